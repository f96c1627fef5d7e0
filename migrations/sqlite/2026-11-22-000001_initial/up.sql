-- The storage model of spec §3 on SQLite: times are TEXT `YYYY-MM-DDTHH:MM:SS.ffffffZ` (fixed
-- six digits, so text order is time order), booleans 0/1, event_types a JSON array.
CREATE TABLE configs (
    id          TEXT PRIMARY KEY NOT NULL,
    endpoint    TEXT NOT NULL,
    secret      TEXT NOT NULL,
    event_types TEXT NOT NULL,
    active      INTEGER NOT NULL,
    name        TEXT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    deleted_at  TEXT NULL
);
CREATE INDEX configs_live_updated ON configs (updated_at DESC, id DESC) WHERE deleted_at IS NULL;

CREATE TABLE deliveries (
    id                TEXT PRIMARY KEY NOT NULL,
    event_id          TEXT NOT NULL,
    idempotency_key   TEXT NOT NULL DEFAULT '',
    config_id         TEXT NOT NULL REFERENCES configs (id) ON DELETE RESTRICT,
    event_type        TEXT NOT NULL,
    payload           TEXT NOT NULL,
    status            TEXT NOT NULL
        CHECK (status IN ('pending', 'delivering', 'succeeded', 'failed', 'cancelled')),
    attempt_count     INTEGER NOT NULL,
    first_attempt_at  TEXT NULL,
    next_attempt_at   TEXT NULL,
    claimed_at        TEXT NULL,
    last_attempt_at   TEXT NULL,
    last_status_code  INTEGER NULL,
    last_error        TEXT NOT NULL DEFAULT '',
    replay_generation INTEGER NOT NULL DEFAULT 0,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
CREATE UNIQUE INDEX deliveries_event_config ON deliveries (event_id, config_id);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX deliveries_claimed ON deliveries (claimed_at) WHERE status = 'delivering';
CREATE INDEX deliveries_created ON deliveries (created_at, id);
CREATE INDEX deliveries_config_status ON deliveries (config_id, status, created_at, id);

CREATE TABLE attempts (
    id                TEXT PRIMARY KEY NOT NULL,
    delivery_id       TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt_number    INTEGER NOT NULL,
    replay_generation INTEGER NOT NULL,
    endpoint          TEXT NOT NULL,
    outcome           TEXT NOT NULL
        CHECK (outcome IN ('succeeded', 'retryable_failure', 'permanent_failure')),
    status_code       INTEGER NOT NULL,
    error             TEXT NOT NULL DEFAULT '',
    duration_ms       INTEGER NULL,
    response_excerpt  TEXT NOT NULL DEFAULT '',
    created_at        TEXT NOT NULL
);
CREATE UNIQUE INDEX attempts_delivery_number ON attempts (delivery_id, replay_generation, attempt_number);
CREATE INDEX attempts_delivery_created ON attempts (delivery_id, created_at, id);

CREATE TABLE replay_requests (
    key          TEXT PRIMARY KEY NOT NULL,
    request_hash TEXT NOT NULL,
    response     TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE INDEX replay_requests_created ON replay_requests (created_at);
