-- enterprise.audit.list and the SIEM feed filter a chain by operation,
-- outcome, key, actor and time, in seq order, a page at a time. Without an
-- index for the filter, a page whose matches are rare reads the whole chain.
--
-- Time: a chain's events are in time order (the writer never stamps an event
-- earlier than its chain's previous one; audit_chains.last_at is that
-- previous time), so a time window is a seq range, found by binary search on
-- the chain's own key: no index, no bytes. Events written before this
-- migration may not be: ordered_from is the seq from which they are (the last
-- event stamped earlier than the one before it); before it, a window is
-- filtered by scanning.
ALTER TABLE audit_chains ADD COLUMN last_at TIMESTAMP;
ALTER TABLE audit_chains ADD COLUMN ordered_from BIGINT NOT NULL DEFAULT 1;
UPDATE audit_chains SET last_at = (
    SELECT occurred_at FROM audit_events e WHERE e.chain_id = audit_chains.chain_id AND e.seq = audit_chains.last_seq
);
UPDATE audit_chains SET ordered_from = COALESCE((
    SELECT MAX(seq) FROM (
        SELECT seq, occurred_at < LAG(occurred_at) OVER (ORDER BY seq) AS went_back
        FROM audit_events e WHERE e.chain_id = audit_chains.chain_id
    ) WHERE went_back
), 1);
-- Operation: one entry per event (the key of a WITHOUT ROWID table ends
-- every index entry, so entries are (chain_id, operation, seq): a page is a
-- range, in seq order). Outcome: only the denied events, the ones an auditor
-- looks for (floods of refusals are summarized, not one event each); allowed
-- events are most of a chain, and a page of them is found by reading the
-- chain in order. Queries spell the index's condition out as it is written
-- here: SQLite matches it as written, not through a bound parameter.
--
-- Without statistics, SQLite's planner prefers to read the chain in seq
-- order and stop at the page's end over an index it cannot tell is
-- selective; queries mark each filter unlikely() so that it takes the index
-- (whose range is in seq order too: never worse).
CREATE INDEX audit_events_by_operation ON audit_events (chain_id, operation);
CREATE INDEX audit_events_denied ON audit_events (chain_id, outcome) WHERE outcome = 'DENIED';
