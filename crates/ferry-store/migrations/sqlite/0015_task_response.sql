-- What the target answered (issue 20): the value a publisher's `response` expression
-- picked from the answer of the newest attempt that gave one, as JSON text; NULL when
-- none did. Kept on the task, so the detail reads it with the row.
ALTER TABLE tasks ADD COLUMN response TEXT;
