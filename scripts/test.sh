#!/usr/bin/env bash
# The test command (README "Test it"): provisions what the suite needs on a fresh machine, then
# runs the same checks as CI: cargo fmt --check, clippy with -D warnings, and the whole suite.
#
# - PostgreSQL: a throwaway server on 127.0.0.1:$WEBHOOKS_TEST_PG_PORT (default 55432).
# - Kafka: a real Kafka-protocol broker (tansu) on 127.0.0.1:$WEBHOOKS_TEST_KAFKA_PORT (default
#   59092).
# - Build dependencies: libpq's and OpenSSL's headers. See scripts/services.sh.
# - Chromium and chromedriver for the console's browser test, with apt when missing.
#
# Extra arguments go to the test runner: ./scripts/test.sh -E 'test(config_api)'
set -euo pipefail
cd "$(dirname "$0")/.."

PG_PORT="${WEBHOOKS_TEST_PG_PORT:-55432}"
KAFKA_PORT="${WEBHOOKS_TEST_KAFKA_PORT:-59092}"
# Throwaway data: durability off for speed.
PG_OPTIONS="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
# shellcheck source=scripts/services.sh
. ./scripts/services.sh

# The console's browser test (tests/it/console.rs) drives Debian's Chromium over WebDriver.
if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
    log "installing chromium and chromium-driver (the console's browser test)"
    apt_install chromium chromium-driver
fi

# --- checks -----------------------------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings
log "test suite"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --locked --no-fail-fast "$@"
else
    cargo test --locked --no-fail-fast "$@"
fi
