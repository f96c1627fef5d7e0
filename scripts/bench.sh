#!/usr/bin/env bash
# The benchmark (README "Benchmark"): provisions PostgreSQL and tansu like the test command,
# builds the release binaries, and runs benches/pipeline.rs, which prints the results table
# (Markdown, on stdout) and writes it as JSON to target/bench/bench.json.
#
#   ./scripts/bench.sh            the full run (about 10 minutes on 2 cores)
#   ./scripts/bench.sh --smoke    tiny sizes, debug build: proves the benchmark works (CI)
#
# PostgreSQL keeps its default durability here (fsync and synchronous_commit on): every
# delivery counted is committed to disk.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=release
TARGET_DIR=release
if [ "${1:-}" = "--smoke" ]; then
    PROFILE=dev
    TARGET_DIR=debug
fi
PG_PORT="${WEBHOOKS_BENCH_PG_PORT:-55433}"
KAFKA_PORT="${WEBHOOKS_BENCH_KAFKA_PORT:-59093}"
PG_OPTIONS=""
# shellcheck source=scripts/services.sh
. ./scripts/services.sh

log "building the $PROFILE binaries"
cargo build --profile "$PROFILE" --locked --bin webhooks
export WEBHOOKS_BENCH_BIN="$PWD/target/$TARGET_DIR/webhooks"
export WEBHOOKS_BENCH_DIR="$PWD/target/bench"
mkdir -p "$WEBHOOKS_BENCH_DIR"
log "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
cargo bench --profile "$PROFILE" --locked --bench pipeline -- "$@"
