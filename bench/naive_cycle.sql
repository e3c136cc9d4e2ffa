-- The naive textbook annotator cycle: the raw-SQL ceiling `deno task bench` compares the HTTP
-- cycle with. A pgbench script (pgbench -f bench/naive_cycle.sql -D dataset_id=N); bench/main.ts
-- runs the same three statements through the driver when pgbench is missing.
--
-- Three statements, each autocommitted (no BEGIN): with synchronous_commit on, each one waits
-- for its own WAL flush. The table shape is bench/sql/naive_schema.sql: the images columns, a
-- status column, and an index in exactly the claim's ORDER BY, limited to pending rows, so the
-- claim is an index scan that stops at the first row it can lock (no sort).
--
-- 1. Claim, lock the highest-priority pending image nobody holds and mark it claimed.
UPDATE naive_images
SET status = 'claimed', claimed_by = :client_id, claimed_at = now()
WHERE id = (
  SELECT id
  FROM naive_images
  WHERE dataset_id = :dataset_id AND status = 'pending'
  ORDER BY priority DESC, id
  LIMIT 1
  FOR UPDATE SKIP LOCKED
)
RETURNING id AS image_id
\gset
-- 2. The annotation, one bbox.
INSERT INTO naive_annotations (image_id, user_id, labels, shapes)
VALUES (:image_id, :client_id, '{car}', jsonb_build_array(jsonb_build_object(
  'type', 'bbox', 'label', 'car', 'x', 10, 'y', 20, 'width', 100, 'height', 50)));
-- 3. Done.
UPDATE naive_images SET status = 'done' WHERE id = :image_id;
