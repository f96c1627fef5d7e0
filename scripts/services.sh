# Provisioning shared by scripts/test.sh and scripts/bench.sh (sourced, not run): build
# dependencies, a throwaway PostgreSQL and a Kafka-protocol broker (tansu), all removed on exit.
#
# - PostgreSQL: a throwaway server on 127.0.0.1:$PG_PORT, in a temporary directory. Installed
#   with apt when missing. PostgreSQL refuses to run as root, so as root it runs as `postgres`.
#   `PG_OPTIONS` adds server settings (the tests turn fsync off; the benchmark keeps it on).
# - Kafka: tansu (from crates.io; built once and cached by scripts/install-tansu.sh) on
#   127.0.0.1:$KAFKA_PORT, storing its log in SQLite in a temporary directory.
# - Build dependencies: libpq's headers for diesel's PostgreSQL driver, OpenSSL's for librdkafka.
#
# Exports WEBHOOKS_TEST_POSTGRES_URL and WEBHOOKS_TEST_KAFKA.

# shellcheck source=scripts/provision.sh
. ./scripts/provision.sh

PG_PORT="${PG_PORT:-55432}"
PG_DIR="$(mktemp -d /tmp/webhooks-pg.XXXXXX)"
run_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ "$(id -u)" -eq 0 ]; then chown postgres: "$PG_DIR"; fi

KAFKA_DIR="$(mktemp -d /tmp/webhooks-kafka.XXXXXX)"
KAFKA_PID=""
cleanup() {
    run_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    if [ -n "$KAFKA_PID" ]; then kill "$KAFKA_PID" 2>/dev/null || true; wait "$KAFKA_PID" 2>/dev/null || true; fi
    rm -rf "$PG_DIR" "$KAFKA_DIR"
}
trap cleanup EXIT

log "starting a throwaway PostgreSQL on 127.0.0.1:$PG_PORT"
run_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres --no-sync >/dev/null
if ! run_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=300 ${PG_OPTIONS:-}" \
    start >/dev/null; then
    # The log goes with the temporary directory: show why before it does.
    log "PostgreSQL did not start; its log:"
    cat "$PG_DIR/server.log" >&2 || true
    exit 1
fi
export WEBHOOKS_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"

TANSU="$(./scripts/install-tansu.sh)"
KAFKA_PORT="${KAFKA_PORT:-59092}"
log "starting a Kafka-protocol broker (tansu) on 127.0.0.1:$KAFKA_PORT"
# tansu resolves the sqlite:// path against its working directory.
(cd "$KAFKA_DIR" && exec env -u CLUSTER_ID -u STORAGE_ENGINE "$TANSU" broker \
    --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --storage-engine "sqlite://tansu.db" >"$KAFKA_DIR/broker.log" 2>&1) &
KAFKA_PID=$!
for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null; then break; fi
    if ! kill -0 "$KAFKA_PID" 2>/dev/null; then cat "$KAFKA_DIR/broker.log" >&2; log "tansu exited"; exit 1; fi
    sleep 0.2
done
export WEBHOOKS_TEST_KAFKA="127.0.0.1:$KAFKA_PORT"

