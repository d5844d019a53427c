-- The trigram indexes move out of `tasks` into an insert-only table of their own
-- (issue 7). An update of a task (every claim, completion and bulk action) cannot be
-- HOT, since status and updated-at are indexed, so it writes a new row version into
-- every index of `tasks`; the two GIN trigram indexes made that two thirds slower.
-- `task_search` is written once per task and follows its task out when it is pruned,
-- both by statement triggers (a foreign key would check every row on its own).
CREATE TABLE task_search (
    task_id           TEXT NOT NULL PRIMARY KEY,
    entity_identifier TEXT NOT NULL
);

INSERT INTO task_search (task_id, entity_identifier) SELECT id, entity_identifier FROM tasks;

DROP INDEX IF EXISTS tasks_id_trgm;
DROP INDEX IF EXISTS tasks_entity_identifier_trgm;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        EXECUTE 'CREATE INDEX task_search_id_trgm ON task_search USING gin (task_id public.gin_trgm_ops)';
        EXECUTE 'CREATE INDEX task_search_entity_identifier_trgm ON task_search USING gin (entity_identifier public.gin_trgm_ops)';
    END IF;
END
$$;

CREATE FUNCTION task_search_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_search (task_id, entity_identifier)
        SELECT id, entity_identifier FROM inserted_tasks;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_search_insert AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS inserted_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION task_search_insert();

CREATE FUNCTION task_search_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM task_search WHERE task_id IN (SELECT id FROM deleted_tasks);
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_search_delete AFTER DELETE ON tasks
    REFERENCING OLD TABLE AS deleted_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION task_search_delete();
