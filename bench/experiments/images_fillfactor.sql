-- Experiment (bench --db-setup): leave 15 % of each images page free. A claim only rewrites
-- `leases` (no indexed column), so with room on the page its update is HOT: no new entry in any
-- of the four indexes. On full pages (fillfactor 100, as bulk registration leaves them) it is
-- not, and the claim inserts four index entries, one of them into the claim queue itself.
ALTER TABLE images SET (fillfactor = 85);
