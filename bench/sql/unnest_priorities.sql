-- The raw-driver ceiling for setPriorities: one batch of ids and priorities, one statement.
UPDATE images AS i
SET priority = u.priority
FROM unnest($1::bigint[], $2::float8[]) AS u (id, priority)
WHERE i.id = u.id;
