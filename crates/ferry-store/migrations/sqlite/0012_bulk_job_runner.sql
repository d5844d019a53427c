-- A bulk job names the node working it (issue 18): a job whose node stopped can be
-- resumed by one other node, which puts its own name here.
ALTER TABLE bulk_jobs ADD COLUMN runner TEXT;
