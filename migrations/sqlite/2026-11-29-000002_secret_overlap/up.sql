-- Secret overlap (spec §2.5, §3): after a secret change with --secret-overlap, the replaced
-- secret keeps signing, after the current one, until previous_secret_expires_at (a time as
-- fixed-width text, like every time here). Never returned by the API.
ALTER TABLE configs ADD COLUMN previous_secret TEXT NULL;
ALTER TABLE configs ADD COLUMN previous_secret_expires_at TEXT NULL;
