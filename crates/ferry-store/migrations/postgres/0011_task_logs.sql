-- Log lines stored by the write that makes them, as SQLite has since its migration 0009
-- (issue 7). A completion logs two lines or more ("attempt 1 of 5 by …", then what the
-- publisher did), each a row with an index entry; now the lines one write adds to one
-- task and phase are one row of `task_logs`, a JSON array, with one index entry.
-- Reading a task's log by (task_id, phase, id) gives its lines in the order written.
CREATE TABLE task_logs (
    id      BIGSERIAL,
    task_id TEXT NOT NULL,
    phase   TEXT NOT NULL,   -- import | export
    lines   TEXT NOT NULL    -- JSON: [[at, level, message], …], oldest first
);

LOCK TABLE task_messages IN SHARE ROW EXCLUSIVE MODE;
INSERT INTO task_logs (id, task_id, phase, lines)
    SELECT id, task_id, phase, json_build_array(json_build_array(at, level, message))::text
    FROM task_messages;
SELECT setval(pg_get_serial_sequence('task_logs', 'id'), COALESCE(MAX(id), 0) + 1, false)
    FROM task_logs;
DROP TABLE task_messages;

CREATE INDEX task_logs_task ON task_logs (task_id, phase, id);
