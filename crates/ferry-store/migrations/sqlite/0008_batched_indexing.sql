-- Two changes that make inserting tasks about twice as fast (issue 7):
--
-- 1. New tasks are made searchable and counted by the code that inserts them, with one
--    statement per table for a whole batch (`index_inserted` in sqlite.rs), and the
--    statements that change a status count the change the same way (`CountChanges`),
--    no longer triggers that ran once per row. Deletes keep their triggers.
--
-- 2. The identifier's index is sparse. FTS5 taking all 24 trigrams of a random
--    26-character identifier was most of an insert's time. `task_id_grams` keeps the
--    trigrams that start at every fourth character (6 per identifier, one token each);
--    a search of 6 characters or more holds a whole indexed trigram at each of the 4
--    ways it can line up with them (`id_gram_query` in query.rs). The entity identifier
--    keeps its full trigram index, now a table of its own (`task_entity_fts`).
--    Every candidate is checked against the real value, so the sparse index finds the
--    same tasks.
DROP TRIGGER tasks_search_insert;
DROP TRIGGER task_counts_insert;
DROP TRIGGER task_counts_update;
DROP TRIGGER tasks_search_delete;
DROP TABLE tasks_fts;

CREATE VIRTUAL TABLE task_entity_fts USING fts5(
    entity_identifier,
    content = '', contentless_delete = 1,
    tokenize = 'trigram case_sensitive 1'
);

CREATE VIRTUAL TABLE task_id_grams USING fts5(
    grams,
    content = '', contentless_delete = 1, detail = none,
    tokenize = 'ascii'
);

INSERT INTO task_entity_fts (rowid, entity_identifier)
    SELECT s.rowid, t.entity_identifier FROM task_search s JOIN tasks t ON t.id = s.task_id;

-- The same expression as `query::id_grams_sql("t.id")` (a unit test checks it).
INSERT INTO task_id_grams (rowid, grams)
    SELECT s.rowid, substr(t.id, 1, 3) || ' ' || substr(t.id, 5, 3) || ' ' || substr(t.id, 9, 3) || ' ' || substr(t.id, 13, 3) || ' ' || substr(t.id, 17, 3) || ' ' || substr(t.id, 21, 3)
    FROM task_search s JOIN tasks t ON t.id = s.task_id;

CREATE TRIGGER tasks_search_delete AFTER DELETE ON tasks
BEGIN
    DELETE FROM task_entity_fts WHERE rowid = (SELECT rowid FROM task_search WHERE task_id = old.id);
    DELETE FROM task_id_grams WHERE rowid = (SELECT rowid FROM task_search WHERE task_id = old.id);
    DELETE FROM task_search WHERE task_id = old.id;
END;
