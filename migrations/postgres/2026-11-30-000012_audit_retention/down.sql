DROP INDEX audit_tree_nodes_by_event_id;
DROP TABLE audit_tree_nodes;
DROP TABLE audit_archives;
ALTER TABLE tenants DROP COLUMN audit_retention_days;
