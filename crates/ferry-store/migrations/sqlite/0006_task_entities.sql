-- Entities kept apart from the task rows (issue 7). A ~1 KB entity made every row of
-- the WITHOUT ROWID `tasks` table spill into an overflow page, so each claim, completion
-- and action rewrote two pages per task, and the writer's cache held few rows. Task rows
-- are now ~150 bytes; an entity is read only when its task is shown, claimed or exported.
CREATE TABLE task_entities (
    task_id     TEXT NOT NULL PRIMARY KEY,
    entity_data TEXT NOT NULL   -- JSON as stored
);

INSERT INTO task_entities (task_id, entity_data) SELECT id, entity_data FROM tasks;

ALTER TABLE tasks DROP COLUMN entity_data;
