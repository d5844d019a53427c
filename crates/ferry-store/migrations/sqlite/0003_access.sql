-- Who may come in: users, API tokens and web sessions (issue 6). Tokens and session
-- ids are stored as SHA-256 digests only; passwords as Argon2id hashes.
CREATE TABLE users (
    name          TEXT    NOT NULL PRIMARY KEY,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL,   -- viewer | operator | admin
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    name       TEXT    NOT NULL PRIMARY KEY,
    digest     TEXT    NOT NULL UNIQUE,
    role       TEXT    NOT NULL,
    created_by TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE sessions (
    digest     TEXT    NOT NULL PRIMARY KEY,
    user_name  TEXT    NOT NULL,
    csrf       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_name);

-- The audit trail says from where, and keeps every entry as written: rows are never
-- deleted, and only the counts of an action (filled in when it completes) change.
ALTER TABLE operator_actions ADD COLUMN origin TEXT;
CREATE INDEX operator_actions_actor ON operator_actions (actor, id);

CREATE TRIGGER operator_actions_append_only_delete BEFORE DELETE ON operator_actions
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;

CREATE TRIGGER operator_actions_append_only_update
BEFORE UPDATE OF id, at, actor, action, reason, target, origin ON operator_actions
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
