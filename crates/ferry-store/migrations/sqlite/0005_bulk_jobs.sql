-- Bulk actions by filter as tracked jobs (issue 7). The action itself (who, when, why,
-- which filter, final counts) is the operator_actions row; this is its progress.
CREATE TABLE bulk_jobs (
    id               INTEGER PRIMARY KEY,
    action_id        INTEGER NOT NULL UNIQUE,  -- operator_actions.id
    state            TEXT    NOT NULL,         -- running | done | cancelled | failed
    matched          INTEGER NOT NULL,         -- tasks matching the filter at the start
    eligible         INTEGER NOT NULL,         -- of them, those the action may change
    changed          INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    cancelled_by     TEXT,
    error            TEXT,
    started_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,         -- the last batch: a sign of life
    finished_at      INTEGER
);
CREATE INDEX bulk_jobs_state ON bulk_jobs (state, id);
