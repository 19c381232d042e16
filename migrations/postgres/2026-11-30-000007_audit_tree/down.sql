ALTER TABLE audit_events DROP COLUMN tree_hashes;
