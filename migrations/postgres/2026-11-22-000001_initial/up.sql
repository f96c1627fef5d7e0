-- The storage model of spec §3: configs, one row per (event × config) delivery, one row per
-- outbound call, and the idempotency records of replays.
CREATE TABLE configs (
    id          VARCHAR PRIMARY KEY,
    endpoint    VARCHAR NOT NULL,
    secret      VARCHAR NOT NULL,
    event_types VARCHAR[] NOT NULL,
    active      BOOLEAN NOT NULL,
    name        VARCHAR NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    deleted_at  TIMESTAMPTZ NULL
);
-- GET /configs lists live configs newest-updated first.
CREATE INDEX configs_live_updated ON configs (updated_at DESC, id DESC) WHERE deleted_at IS NULL;

CREATE TABLE deliveries (
    id                VARCHAR PRIMARY KEY,
    event_id          VARCHAR NOT NULL,
    idempotency_key   VARCHAR NOT NULL DEFAULT '',
    config_id         VARCHAR NOT NULL REFERENCES configs (id) ON DELETE RESTRICT,
    event_type        VARCHAR NOT NULL,
    payload           TEXT NOT NULL,
    status            VARCHAR NOT NULL,
    attempt_count     BIGINT NOT NULL,
    first_attempt_at  TIMESTAMPTZ NULL,
    next_attempt_at   TIMESTAMPTZ NULL,
    claimed_at        TIMESTAMPTZ NULL,
    last_attempt_at   TIMESTAMPTZ NULL,
    last_status_code  BIGINT NULL,
    last_error        VARCHAR NOT NULL DEFAULT '',
    replay_generation BIGINT NOT NULL DEFAULT 0,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    CONSTRAINT deliveries_status_check
        CHECK (status IN ('pending', 'delivering', 'succeeded', 'failed', 'cancelled'))
);
CREATE UNIQUE INDEX deliveries_event_config ON deliveries (event_id, config_id);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX deliveries_claimed ON deliveries (claimed_at) WHERE status = 'delivering';
CREATE INDEX deliveries_created ON deliveries (created_at, id);
CREATE INDEX deliveries_config_status ON deliveries (config_id, status, created_at, id);

CREATE TABLE attempts (
    id                VARCHAR PRIMARY KEY,
    delivery_id       VARCHAR NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt_number    BIGINT NOT NULL,
    replay_generation BIGINT NOT NULL,
    endpoint          VARCHAR NOT NULL,
    outcome           VARCHAR NOT NULL,
    status_code       BIGINT NOT NULL,
    error             VARCHAR NOT NULL DEFAULT '',
    duration_ms       BIGINT NULL,
    response_excerpt  TEXT NOT NULL DEFAULT '',
    created_at        TIMESTAMPTZ NOT NULL,
    CONSTRAINT attempts_outcome_check
        CHECK (outcome IN ('succeeded', 'retryable_failure', 'permanent_failure'))
);
CREATE UNIQUE INDEX attempts_delivery_number ON attempts (delivery_id, replay_generation, attempt_number);
CREATE INDEX attempts_delivery_created ON attempts (delivery_id, created_at, id);

CREATE TABLE replay_requests (
    key          VARCHAR PRIMARY KEY,
    request_hash VARCHAR NOT NULL,
    response     TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX replay_requests_created ON replay_requests (created_at);
