-- The background verifier's runs, one row per chain: the current run (or
-- the last, once it finished) and the last completed one, copied at its end.
-- A run verifies the chain from where `audit_verifications` says it was
-- proved through the head at its start. `lease_owner`/`lease_until`: the
-- instance verifying the chain; another takes it only once the lease
-- expired, so one instance at a time verifies a given chain.
CREATE TABLE audit_verification_runs (
    chain_id TEXT NOT NULL PRIMARY KEY,
    lease_owner TEXT,
    lease_until TIMESTAMP,
    run_id BIGINT NOT NULL,
    state TEXT,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    verified_from BIGINT NOT NULL,
    events_read BIGINT NOT NULL,
    verified_through BIGINT NOT NULL,
    head_at_start BIGINT NOT NULL,
    problems TEXT NOT NULL,
    last_run_id BIGINT,
    last_state TEXT,
    last_started_at TIMESTAMP,
    last_finished_at TIMESTAMP,
    last_verified_from BIGINT,
    last_events_read BIGINT,
    last_verified_through BIGINT,
    last_head_at_start BIGINT,
    last_problems TEXT
)
 WITHOUT ROWID;
