-- How far `enterprise.audit.verify` has proved each chain: its tree's size
-- and root there (recomputed from the events, from the previous such point,
-- and matched against the signed checkpoints met on the way) and the hash
-- chain's hash at that event. The next verification starts here and reads
-- only the events after it, so no request reads a whole large chain.
CREATE TABLE audit_verifications (
    chain_id TEXT NOT NULL PRIMARY KEY,
    tree_size BIGINT NOT NULL,
    root_hash TEXT NOT NULL,
    chain_hash TEXT NOT NULL,
    verified_at TIMESTAMP NOT NULL
);
