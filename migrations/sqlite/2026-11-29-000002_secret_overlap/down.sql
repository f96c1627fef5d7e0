ALTER TABLE configs DROP COLUMN previous_secret_expires_at;
ALTER TABLE configs DROP COLUMN previous_secret;
