-- Spec §3, §10.2: since when a config's calls have all failed (NULL after a success), shared by
-- every worker process; auto-disable reads it.
ALTER TABLE configs ADD COLUMN failing_since TIMESTAMPTZ NULL;
