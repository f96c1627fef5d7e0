#!/usr/bin/env bash
# The fault procedures of spec §10.5 (README "Reliability", RELIABILITY.md): provisions what they
# need on a fresh Debian machine, builds the binary, and runs benches/faults/, which starts and
# stops its own PostgreSQL and tansu, prints one table of figures (Markdown, on stdout) and
# writes it as JSON to target/faults/faults.json. Exits non-zero when any figure does not hold
# (an event lost, a 5xx, a leaked secret, …).
#
#   ./scripts/faults.sh            the full run (release build; about 15 minutes on 2 cores)
#   ./scripts/faults.sh --smoke    small counts, shorter outages, the same procedures and checks
#                                  (debug build, which CI's test suite has just built) — CI
#
# - PostgreSQL: the server from apt (scripts/provision.sh); the driver runs a throwaway cluster
#   of its own on 127.0.0.1:$WEBHOOKS_FAULTS_PG_PORT (default 55435), with password roles.
# - Kafka: tansu (scripts/install-tansu.sh) on 127.0.0.1:$WEBHOOKS_FAULTS_KAFKA_PORT (default
#   59095), stopped and restarted on its data by the broker-restart procedure; the kill -9
#   procedure uses librdkafka's mock cluster hosted by the driver.
# - schemathesis (PyPI) in a virtualenv cached in ~/.cache/webhooks, keyed by its version.
#
# FAULTS_ONLY=kill9,fuzz runs only the procedures whose names contain one of those words.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=release
TARGET_DIR=release
SMOKE=()
if [ "${1:-}" = "--smoke" ]; then
    PROFILE=dev
    TARGET_DIR=debug
    SMOKE=(--smoke)
fi

# shellcheck source=scripts/provision.sh
. ./scripts/provision.sh
TANSU="$(./scripts/install-tansu.sh)"

SCHEMATHESIS_VERSION=4.32.5
CACHE="${WEBHOOKS_CACHE_DIR:-$HOME/.cache/webhooks}"
VENV="$CACHE/venv-schemathesis-$SCHEMATHESIS_VERSION"
if [ ! -f "$VENV/.complete" ]; then
    if ! /usr/bin/python3 -m venv --help >/dev/null 2>&1 || ! /usr/bin/python3 -c 'import ensurepip' 2>/dev/null; then
        log "installing python3-venv"
        apt_install python3 python3-venv
    fi
    log "installing schemathesis $SCHEMATHESIS_VERSION into $VENV (cached for later runs)"
    rm -rf "$VENV"
    /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
    touch "$VENV/.complete"
fi

log "building the $PROFILE binary"
cargo build --profile "$PROFILE" --locked --bin webhooks

export FAULTS_BIN="$PWD/target/$TARGET_DIR/webhooks"
export FAULTS_PG_BIN="$PG_BIN"
export FAULTS_TANSU="$TANSU"
# Odd ports: Linux gives connect() even ephemeral ports first, and a client that retries a
# stopped broker from an ephemeral port equal to the broker's connects to itself and keeps the
# port, so the broker cannot listen on it again.
export FAULTS_PG_PORT="${WEBHOOKS_FAULTS_PG_PORT:-55435}"
export FAULTS_KAFKA_PORT="${WEBHOOKS_FAULTS_KAFKA_PORT:-59095}"
export FAULTS_DIR="$PWD/target/faults"
export FAULTS_SCHEMATHESIS="$VENV/bin/schemathesis"
FAULTS_COMMIT="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then FAULTS_COMMIT="$FAULTS_COMMIT+dirty"; fi
export FAULTS_COMMIT
mkdir -p "$FAULTS_DIR"
log "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
cargo bench --profile "$PROFILE" --locked --bench faults -- "${SMOKE[@]}"
