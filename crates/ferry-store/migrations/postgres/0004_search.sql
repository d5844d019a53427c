-- Trigram indexes for *contains* searches on the task identifier and the entity
-- identifier (issue 7): `pg_trgm` GIN indexes serve `LIKE '%…%'`. The extension goes in
-- `public` so every schema sees one copy. Where the database user may not create it,
-- the searches still work, by scanning; the notice says what to ask for.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_trgm is not available (%); contains searches will scan. Ask an administrator to run CREATE EXTENSION pg_trgm.', SQLERRM;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        EXECUTE 'CREATE INDEX tasks_id_trgm ON tasks USING gin (id public.gin_trgm_ops)';
        EXECUTE 'CREATE INDEX tasks_entity_identifier_trgm ON tasks USING gin (entity_identifier public.gin_trgm_ops)';
    END IF;
END
$$;
