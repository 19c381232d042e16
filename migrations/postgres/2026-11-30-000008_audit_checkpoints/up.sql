-- Every signed checkpoint of every chain's tree, kept: a C2SP signed note
-- (tlog-checkpoint body: origin, tree size, base64 root) signed with the
-- instance's checkpoint key, which is never stored here.
CREATE TABLE audit_checkpoints (
    chain_id TEXT NOT NULL,
    tree_size BIGINT NOT NULL,
    root_hash TEXT NOT NULL,
    note TEXT NOT NULL,
    signed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (chain_id, tree_size)
);
