-- Running task counts per route and status (issue 7). Counting a million tasks by
-- status takes about 100 ms; the status counts of the Tasks page with no filter, or
-- filtered by routes and statuses only, and the Routes page read these totals instead.
-- Triggers keep them in step with `tasks` in the same transaction (SQLite has one
-- writer, so the few rows here are never contended). A task's route never changes.
CREATE TABLE task_counts (
    route  TEXT    NOT NULL,
    status TEXT    NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (route, status)
) WITHOUT ROWID;

INSERT INTO task_counts (route, status, n)
    SELECT route, status, COUNT(*) FROM tasks GROUP BY route, status;

CREATE TRIGGER task_counts_insert AFTER INSERT ON tasks
BEGIN
    INSERT INTO task_counts (route, status, n) VALUES (new.route, new.status, 1)
        ON CONFLICT (route, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER task_counts_update AFTER UPDATE OF status ON tasks
    WHEN old.status IS NOT new.status
BEGIN
    UPDATE task_counts SET n = n - 1 WHERE route = old.route AND status = old.status;
    INSERT INTO task_counts (route, status, n) VALUES (new.route, new.status, 1)
        ON CONFLICT (route, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER task_counts_delete AFTER DELETE ON tasks
BEGIN
    UPDATE task_counts SET n = n - 1 WHERE route = old.route AND status = old.status;
END;
