-- Where each incremental (`since`) http subscriber got to (issue 19): the greatest `from`
-- value of its last successful run, per incoming configuration. A reset deletes the row.
CREATE TABLE since_marks (
    incoming   TEXT   NOT NULL PRIMARY KEY,
    value      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);
