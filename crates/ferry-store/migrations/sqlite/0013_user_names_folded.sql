-- User names are compared without regard to case (issue 18): 'Admin' and 'admin' cannot
-- both exist, and either spelling signs in. (SQLite's lower() folds ASCII letters only.)
CREATE UNIQUE INDEX users_name_folded ON users (lower(name));
