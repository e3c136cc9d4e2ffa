-- migrate:up
-- Each image carries its dataset's annotations_per_image (k). The claim and submit statements
-- decide on the image row they lock, and only that row is re-read in its newest version when a
-- concurrent write got there first (EvalPlanQual); a k read from datasets comes from the
-- statement's snapshot. So a claim or submit that started before an updateDataset of k
-- committed, and reached its image after, acted on the old k: an image could end done with fewer
-- than k annotations, or leased to more than k annotators. Now updateDataset rewrites k on every
-- image of the dataset in the same transaction (locking each row, so the claims and submits on
-- them see the new value), and registerImages reads it from the dataset row FOR SHARE (it waits
-- for a k change in flight, and a k change waits for it).
ALTER TABLE images
  ADD COLUMN annotations_per_image smallint NOT NULL DEFAULT 1
    CHECK (annotations_per_image BETWEEN 1 AND 10);

UPDATE images i
SET annotations_per_image = d.annotations_per_image
FROM datasets d
WHERE d.id = i.dataset_id AND d.annotations_per_image <> 1;

-- migrate:down
ALTER TABLE images DROP COLUMN annotations_per_image;
