-- Spec §3, §10.2: since when a config's calls have all failed (NULL after a success); auto-disable
-- reads it. Times are fixed-width RFC 3339 text, as in every table.
ALTER TABLE configs ADD COLUMN failing_since TEXT NULL;
