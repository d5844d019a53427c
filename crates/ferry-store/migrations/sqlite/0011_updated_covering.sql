-- `tasks_updated` also holds the columns a list sorted by updated-at compares when it
-- reads that index in order (`Source::UpdatedOrder` in query.rs: `+created_at`,
-- `+route`, `+entity_schema`), so such a list finds its page's identifiers in the index
-- alone and reads only the page's rows (`query::list_from`), instead of one row per
-- task passed (issue 7). None of these columns ever changes, and every update rewrites
-- this index's entry anyway (updated-at changes), so updates write no more entries than
-- before. A 1% creation window sorted by updated-at at 1M: 29.4 ms → 1.3 ms.
DROP INDEX tasks_updated;
CREATE INDEX tasks_updated ON tasks (updated_at, id, created_at, route, entity_schema);
