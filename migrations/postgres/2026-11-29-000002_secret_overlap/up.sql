-- Secret overlap (spec §2.5, §3): after a secret change with --secret-overlap, the replaced
-- secret keeps signing, after the current one, until previous_secret_expires_at. Never
-- returned by the API.
ALTER TABLE configs ADD COLUMN previous_secret VARCHAR NULL;
ALTER TABLE configs ADD COLUMN previous_secret_expires_at TIMESTAMPTZ NULL;
