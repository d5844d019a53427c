-- The indexes on columns a task never changes move from `tasks` to `task_search`
-- (issue 7). An update of a task (every claim, completion and bulk action) cannot be
-- HOT, since status and updated-at are indexed, so it writes an entry into every index
-- of `tasks`: about 2 µs per index per task, most of what a bulk retry of 1M tasks
-- costs. Creation time, route, entity schema and entity identifier are written once, so
-- their orderings are kept on the insert-only `task_search` (which gains the columns
-- they need); `tasks` keeps the indexes that serve status, updated-at, the claim and the
-- lease. Lists with no status filter, in creation order, find their page there.
-- Inserts wait until the new table is in place: a node still running the old code would
-- otherwise add a task between the copy and the swap, and its keys would be lost.
LOCK TABLE tasks IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE task_keys (
    task_id           TEXT   NOT NULL,
    entity_identifier TEXT   NOT NULL,
    route             TEXT   NOT NULL,
    entity_schema     TEXT   NOT NULL,
    created_at        BIGINT NOT NULL
);

INSERT INTO task_keys (task_id, entity_identifier, route, entity_schema, created_at)
    SELECT id, entity_identifier, route, entity_schema, created_at FROM tasks;

DROP TABLE task_search;
ALTER TABLE task_keys RENAME TO task_search;
ALTER TABLE task_search ADD PRIMARY KEY (task_id);

CREATE INDEX task_search_created ON task_search (created_at, task_id);
CREATE INDEX task_search_route_created ON task_search (route, created_at, task_id);
CREATE INDEX task_search_entity_identifier ON task_search (entity_identifier, created_at);
CREATE INDEX task_search_entity_schema_created ON task_search (entity_schema, created_at, task_id);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        EXECUTE 'CREATE INDEX task_search_id_trgm ON task_search USING gin (task_id public.gin_trgm_ops)';
        EXECUTE 'CREATE INDEX task_search_entity_identifier_trgm ON task_search USING gin (entity_identifier public.gin_trgm_ops)';
    END IF;
END
$$;

DROP INDEX tasks_created;
DROP INDEX tasks_route_created;
DROP INDEX tasks_entity_identifier;
DROP INDEX tasks_entity_schema_created;

CREATE OR REPLACE FUNCTION task_search_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_search (task_id, entity_identifier, route, entity_schema, created_at)
        SELECT id, entity_identifier, route, entity_schema, created_at FROM inserted_tasks;
    RETURN NULL;
END
$$;
