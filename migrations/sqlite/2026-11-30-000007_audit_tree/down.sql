DROP TABLE audit_tree_hashes;
