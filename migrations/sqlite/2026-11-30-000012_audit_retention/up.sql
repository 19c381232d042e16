-- Retention: a tenant's events older than `audit_retention_days` (NULL:
-- keep everything) move out of the database into archive segment files.
ALTER TABLE tenants ADD COLUMN audit_retention_days INTEGER;

-- One row per archive segment written: the contiguous seqs it holds, its
-- file (name within `<archive dir>/<chain id>/` and SHA-256), the hash
-- chain's hash at its last event (where the chain walk resumes) and the
-- signed checkpoint size its proofs lead to.
CREATE TABLE audit_archives (
    chain_id TEXT NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    file_name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    event_count BIGINT NOT NULL,
    last_hash TEXT NOT NULL,
    checkpoint_size BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (chain_id, first_seq)
) WITHOUT ROWID;

-- The tree hashes of archived events (their rows are gone): inclusion and
-- consistency proofs, roots and checkpoints still read every node. The
-- event id finds an archived event's leaf for `enterprise.audit.proof`.
CREATE TABLE audit_tree_nodes (
    chain_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    event_id BLOB NOT NULL,
    tree_hashes BLOB NOT NULL,
    PRIMARY KEY (chain_id, seq)
) WITHOUT ROWID;

CREATE INDEX audit_tree_nodes_by_event_id ON audit_tree_nodes (chain_id, event_id);
