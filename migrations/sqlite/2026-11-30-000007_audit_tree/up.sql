-- Each chain is also an RFC 6962 Merkle tree whose leaves are its events'
-- canonical bytes (leaf index = seq - 1). Every node of every complete
-- subtree is stored once, at its "stored hash index" (the layout of Go's
-- golang.org/x/mod/sumdb/tlog: a record's leaf hash, then the roots of the
-- subtrees it completes), so a proof or a root needs O(log n) reads and an
-- append writes 1 + (trailing ones of its index) hashes, two on average.
-- The hashes of events already stored are computed by keyward at start-up
-- (SQL has no SHA-256 over the canonical form).
CREATE TABLE audit_tree_hashes (
    chain_id TEXT NOT NULL,
    idx BIGINT NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (chain_id, idx)
) WITHOUT ROWID;
