-- PostgreSQL moves audit chain heads in a statement trigger on audit_events
-- (see migrations/postgres). SQLite has no statement triggers with transition
-- tables, and there the writer's UPDATE runs in process: nothing to do here;
-- the migration exists so both backends carry the same versions.
SELECT 1;
