-- `tasks_final_updated` goes (issue 7): retention reads each final status's oldest
-- tasks from `tasks_status_updated` and merges the three (`query::final_by_updated`),
-- so every completion and skip no longer writes a task into one more index.
DROP INDEX tasks_final_updated;
