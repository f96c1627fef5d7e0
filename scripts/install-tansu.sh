#!/usr/bin/env bash
# Installs the Kafka-protocol broker the integration tests run against (tansu, from crates.io)
# into a cache the machine keeps, and prints the binary's path. Building takes ~15 minutes on
# 2 cores, so it happens only when the cached binary is missing.
set -euo pipefail
TANSU_VERSION="${TANSU_VERSION:-0.6.0}"
CACHE="${WEBHOOKS_CACHE_DIR:-$HOME/.cache/webhooks}/tansu-$TANSU_VERSION"
if [ ! -x "$CACHE/bin/tansu" ]; then
    echo "==> building tansu $TANSU_VERSION into $CACHE (cached for later runs)" >&2
    cargo install tansu --version "$TANSU_VERSION" --locked --no-default-features --features libsql \
        --root "$CACHE.partial" >&2
    rm -rf "$CACHE" && mv "$CACHE.partial" "$CACHE"
fi
echo "$CACHE/bin/tansu"
