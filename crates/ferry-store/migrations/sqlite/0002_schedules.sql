-- Cron schedules with their next run time. A node fires a schedule only when it moves
-- next_run_at forward itself (compare-and-set), so several nodes fire it once.
CREATE TABLE schedules (
    name        TEXT    NOT NULL PRIMARY KEY,   -- route:<id>:incoming | route:<id>:outgoing
    expression  TEXT    NOT NULL,
    next_run_at INTEGER NOT NULL,
    last_run_at INTEGER
) WITHOUT ROWID;

-- Pruning final tasks by age and by count, oldest first.
CREATE INDEX tasks_final_updated ON tasks (updated_at, id) WHERE status IN ('finished', 'skipped', 'failed');
