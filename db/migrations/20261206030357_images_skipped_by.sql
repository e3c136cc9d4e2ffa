-- migrate:up
-- The annotators who skipped an image (releaseClaim with ?skip=true): it is never offered to them
-- again, and stays claimable for everyone else. On the image row, like annotators, because the
-- claim statements decide on the row they lock and re-check only that row's newest version
-- (EvalPlanQual): a skip held in another table would be read from the statement's snapshot, and
-- a claim racing the release could hand the skipper the same image straight back. The release
-- statement already locks and rewrites the row, so recording the skip costs no extra write.
-- NULL (nobody skipped) rather than '{}': adding the column rewrites nothing, and a row that
-- never gets a skip keeps its width (an empty array would take 16 bytes once the row is
-- rewritten). Statements test it with `(… = ANY (skipped_by)) IS NOT TRUE`.
ALTER TABLE images ADD COLUMN skipped_by bigint[];

-- migrate:down
ALTER TABLE images DROP COLUMN skipped_by;
