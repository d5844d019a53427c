-- Log lines stored by the write that makes them (issue 7). Each line was a row plus an
-- entry in the (task_id, phase, id) index, and that index entry lands at a random place
-- (tasks of many routes interleave): a completion's two lines cost two of them.
--
-- Now the lines one write adds to one task and phase are one row of `task_logs`, a JSON
-- array, with one index entry. Rows are still appended in rowid order, so reading a
-- task's log by (task_id, phase, id) gives its lines in the order they were written.
-- (A WITHOUT ROWID table clustered by task was tried: its inserts land at random places
-- with the whole row, and completions were slower.)
CREATE TABLE task_logs (
    id      INTEGER PRIMARY KEY,
    task_id TEXT    NOT NULL,
    phase   TEXT    NOT NULL,   -- import | export
    lines   TEXT    NOT NULL    -- JSON: [[at, level, message], …], oldest first
);

INSERT INTO task_logs (id, task_id, phase, lines)
    SELECT id, task_id, phase, json_array(json_array(at, level, message)) FROM task_messages;
DROP TABLE task_messages;

CREATE INDEX task_logs_task ON task_logs (task_id, phase, id);
