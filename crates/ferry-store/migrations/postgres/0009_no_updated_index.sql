-- `tasks_updated (updated_at, id)` goes (issue 7). Every claim, completion and bulk
-- change wrote an entry into it; a list by updated-at with no status filter now reads
-- each status apart through `tasks_status_updated` and merges them in order, and an
-- updated-at range with no status filter names every status, so that index serves it.
DROP INDEX tasks_updated;
