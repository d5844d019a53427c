-- Trigram index for *contains* searches on the task identifier and the entity
-- identifier (issue 7). FTS5 needs integer row ids and `tasks` has none (WITHOUT ROWID),
-- so `task_search` gives each task one; `tasks_fts` holds only the index (contentless),
-- case-sensitive like the search. Triggers keep both in step with `tasks`.
CREATE TABLE task_search (
    rowid   INTEGER PRIMARY KEY,
    task_id TEXT    NOT NULL UNIQUE
);

CREATE VIRTUAL TABLE tasks_fts USING fts5(
    id, entity_identifier,
    content = '', contentless_delete = 1,
    tokenize = 'trigram case_sensitive 1'
);

INSERT INTO task_search (task_id) SELECT id FROM tasks;
INSERT INTO tasks_fts (rowid, id, entity_identifier)
    SELECT s.rowid, t.id, t.entity_identifier FROM task_search s JOIN tasks t ON t.id = s.task_id;

CREATE TRIGGER tasks_search_insert AFTER INSERT ON tasks
BEGIN
    INSERT INTO task_search (task_id) VALUES (new.id);
    INSERT INTO tasks_fts (rowid, id, entity_identifier)
        VALUES (last_insert_rowid(), new.id, new.entity_identifier);
END;

CREATE TRIGGER tasks_search_delete AFTER DELETE ON tasks
BEGIN
    DELETE FROM tasks_fts WHERE rowid = (SELECT rowid FROM task_search WHERE task_id = old.id);
    DELETE FROM task_search WHERE task_id = old.id;
END;
