-- What each route last published for each entity (issue 21, the `only_changed`
-- transformer): the digest of the payload and the task that sent it. A task whose
-- payload has the digest another task published is skipped as unchanged.
CREATE TABLE published_digests (
    route             TEXT NOT NULL,
    entity_identifier TEXT NOT NULL,
    digest            TEXT NOT NULL,
    task_id           TEXT NOT NULL,
    PRIMARY KEY (route, entity_identifier)
) WITHOUT ROWID;
