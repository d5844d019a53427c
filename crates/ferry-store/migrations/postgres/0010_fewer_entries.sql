-- Fewer index entries per completion and skip (issue 7).
--
-- `tasks_final_updated` goes: retention reads each final status's oldest tasks from
-- `tasks_status_updated` and merges the three (`query::final_by_updated`), so every
-- completion and skip no longer writes a task's new version into one more index.
--
-- The attempts lose their primary key. Nothing looks one up by its `id`; they are read
-- by task through `task_attempts_task`, in `id` order, and `id` keeps its sequence. Each
-- completion's attempt now adds one index entry, not two.
DROP INDEX tasks_final_updated;
ALTER TABLE task_attempts DROP CONSTRAINT task_attempts_pkey;
