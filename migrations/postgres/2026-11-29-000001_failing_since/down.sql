ALTER TABLE configs DROP COLUMN failing_since;
