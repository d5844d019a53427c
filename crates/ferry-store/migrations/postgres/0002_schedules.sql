CREATE TABLE schedules (
    name        TEXT   NOT NULL PRIMARY KEY,
    expression  TEXT   NOT NULL,
    next_run_at BIGINT NOT NULL,
    last_run_at BIGINT
);

CREATE INDEX tasks_final_updated ON tasks (updated_at, id) WHERE status IN ('finished', 'skipped', 'failed');
