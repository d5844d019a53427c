-- Entities kept apart from the task rows, as on SQLite (issue 7). PostgreSQL writes a
-- whole new row version on every update, and an update of a task cannot be HOT (status
-- and updated-at are indexed): with the ~1 KB entity inside the row, every claim,
-- completion and bulk action copied the entity into the heap and the write-ahead log.
-- Task rows are now ~200 bytes; an entity is written once and read only when its task
-- is shown, claimed or exported.
CREATE TABLE task_entities (
    task_id     TEXT NOT NULL PRIMARY KEY,
    entity_data TEXT NOT NULL   -- JSON as stored
);

INSERT INTO task_entities (task_id, entity_data) SELECT id, entity_data FROM tasks;

ALTER TABLE tasks DROP COLUMN entity_data;
