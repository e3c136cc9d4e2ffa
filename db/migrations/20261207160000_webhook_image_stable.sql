-- migrate:up
-- webhook_image builds jsonb, and jsonb_build_object is STABLE (its output of some types depends
-- on settings): a function declared IMMUTABLE over a STABLE body is never inlined, so each event
-- ran it as a nested SQL function call (pg_stat_statements listed 30,000 of them in the bench's
-- webhook run), 2.7 µs a call against 1.5 inlined (100,000 calls, PostgreSQL 15).
-- tests/rules_sql_test.ts checks that every single-expression SQL function is inlined.
ALTER FUNCTION webhook_image(bigint, bigint, text, text) STABLE;

-- migrate:down
ALTER FUNCTION webhook_image(bigint, bigint, text, text) IMMUTABLE;
