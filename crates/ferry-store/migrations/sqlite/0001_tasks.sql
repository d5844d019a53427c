-- Tasks and their logs. Times are integer epoch milliseconds (UTC).
CREATE TABLE tasks (
    id                TEXT    NOT NULL PRIMARY KEY,   -- ULID, time-sortable
    route             TEXT    NOT NULL,
    entity_schema     TEXT    NOT NULL,
    entity_identifier TEXT    NOT NULL,
    entity_data       TEXT    NOT NULL,               -- JSON as stored
    status            TEXT    NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    next_attempt_at   INTEGER,
    last_error        TEXT,
    lease_owner       TEXT,
    lease_until       INTEGER
) WITHOUT ROWID;

-- The list's default order, created-at ranges and the identifier search.
CREATE INDEX tasks_created ON tasks (created_at, id);
-- Sorting by and filtering on updated-at.
CREATE INDEX tasks_updated ON tasks (updated_at, id);
-- Status filters (and status counts), in either order.
CREATE INDEX tasks_status_created ON tasks (status, created_at, id);
CREATE INDEX tasks_status_updated ON tasks (status, updated_at, id);
-- Route filters, route + status filters, per-route counts and claims (route, 'new', oldest first).
CREATE INDEX tasks_route_status_created ON tasks (route, status, created_at, id);
CREATE INDEX tasks_route_created ON tasks (route, created_at, id);
-- Equality on entity identifier (the entity timeline) and entity schema.
CREATE INDEX tasks_entity_identifier ON tasks (entity_identifier, created_at);
CREATE INDEX tasks_entity_schema_created ON tasks (entity_schema, created_at, id);
-- Due retries and expired leases.
CREATE INDEX tasks_retry_due ON tasks (route, next_attempt_at) WHERE status = 'retry';
CREATE INDEX tasks_lease ON tasks (lease_until) WHERE status = 'processing';

CREATE TABLE task_messages (
    id      INTEGER PRIMARY KEY,
    task_id TEXT    NOT NULL,
    phase   TEXT    NOT NULL,   -- import | export
    at      INTEGER NOT NULL,
    level   TEXT    NOT NULL,   -- debug | info | warn | error
    message TEXT    NOT NULL
);
CREATE INDEX task_messages_task ON task_messages (task_id, phase, id);

-- One row per processing attempt.
CREATE TABLE task_attempts (
    id         INTEGER PRIMARY KEY,
    task_id    TEXT    NOT NULL,
    attempt    INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at   INTEGER NOT NULL,
    outcome    TEXT    NOT NULL,  -- finished | skipped | retry | failed
    error      TEXT
);
CREATE INDEX task_attempts_task ON task_attempts (task_id, id);

-- Every operator action: who, when, what, on which tasks, why. Append-only.
CREATE TABLE operator_actions (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    action     TEXT    NOT NULL,  -- skip | retry
    reason     TEXT,
    target     TEXT    NOT NULL,  -- JSON: {"identifiers": [...]} or {"filter": {...}}
    matched    INTEGER NOT NULL,
    changed    INTEGER NOT NULL,
    ineligible INTEGER NOT NULL,
    not_found  INTEGER NOT NULL
);
CREATE INDEX operator_actions_at ON operator_actions (at);

-- Which tasks an action changed.
CREATE TABLE task_actions (
    task_id   TEXT    NOT NULL,
    action_id INTEGER NOT NULL,
    PRIMARY KEY (task_id, action_id)
) WITHOUT ROWID;
