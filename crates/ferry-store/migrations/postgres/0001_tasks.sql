-- Tasks and their logs (PostgreSQL). Times are epoch milliseconds (BIGINT, UTC), as on
-- SQLite, so both stores order and compare alike.
CREATE TABLE tasks (
    id                TEXT   NOT NULL PRIMARY KEY,   -- ULID, time-sortable
    route             TEXT   NOT NULL,
    entity_schema     TEXT   NOT NULL,
    entity_identifier TEXT   NOT NULL,
    entity_data       TEXT   NOT NULL,               -- JSON as stored
    status            TEXT   NOT NULL,
    attempts          BIGINT NOT NULL DEFAULT 0,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    next_attempt_at   BIGINT,
    last_error        TEXT,
    lease_owner       TEXT,
    lease_until       BIGINT
);

CREATE INDEX tasks_created ON tasks (created_at, id);
CREATE INDEX tasks_updated ON tasks (updated_at, id);
CREATE INDEX tasks_status_created ON tasks (status, created_at, id);
CREATE INDEX tasks_status_updated ON tasks (status, updated_at, id);
CREATE INDEX tasks_route_status_created ON tasks (route, status, created_at, id);
CREATE INDEX tasks_route_created ON tasks (route, created_at, id);
CREATE INDEX tasks_entity_identifier ON tasks (entity_identifier, created_at);
CREATE INDEX tasks_entity_schema_created ON tasks (entity_schema, created_at, id);
CREATE INDEX tasks_retry_due ON tasks (route, next_attempt_at) WHERE status = 'retry';
CREATE INDEX tasks_lease ON tasks (lease_until) WHERE status = 'processing';

CREATE TABLE task_messages (
    id      BIGSERIAL PRIMARY KEY,
    task_id TEXT   NOT NULL,
    phase   TEXT   NOT NULL,
    at      BIGINT NOT NULL,
    level   TEXT   NOT NULL,
    message TEXT   NOT NULL
);
CREATE INDEX task_messages_task ON task_messages (task_id, phase, id);

CREATE TABLE task_attempts (
    id         BIGSERIAL PRIMARY KEY,
    task_id    TEXT   NOT NULL,
    attempt    BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at   BIGINT NOT NULL,
    outcome    TEXT   NOT NULL,
    error      TEXT
);
CREATE INDEX task_attempts_task ON task_attempts (task_id, id);

CREATE TABLE operator_actions (
    id         BIGSERIAL PRIMARY KEY,
    at         BIGINT NOT NULL,
    actor      TEXT   NOT NULL,
    action     TEXT   NOT NULL,
    reason     TEXT,
    target     TEXT   NOT NULL,
    matched    BIGINT NOT NULL,
    changed    BIGINT NOT NULL,
    ineligible BIGINT NOT NULL,
    not_found  BIGINT NOT NULL
);
CREATE INDEX operator_actions_at ON operator_actions (at);

CREATE TABLE task_actions (
    task_id   TEXT   NOT NULL,
    action_id BIGINT NOT NULL,
    PRIMARY KEY (task_id, action_id)
);
