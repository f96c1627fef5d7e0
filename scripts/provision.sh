# Build and service dependencies shared by scripts/services.sh and scripts/faults.sh (sourced,
# not run): installs, with apt when missing, libpq's headers (diesel's PostgreSQL driver),
# OpenSSL's (librdkafka) and the PostgreSQL server, and sets PG_BIN to the server's bin directory.

log() { printf '==> %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=""
apt_install() {
    if [ -z "$apt_updated" ]; then
        as_root apt-get update -qq
        apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

pg_bindir() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

# --- provisioning -----------------------------------------------------------------------------
if ! pkg-config --exists libpq 2>/dev/null; then
    log "installing libpq-dev (PostgreSQL client headers)"
    apt_install libpq-dev pkg-config
fi
if ! pkg-config --exists openssl 2>/dev/null; then
    log "installing libssl-dev (TLS for librdkafka)"
    apt_install libssl-dev pkg-config
fi
if [ -z "$(pg_bindir)" ] || [ ! -x "$(pg_bindir)/initdb" ]; then
    log "installing the PostgreSQL server"
    apt_install postgresql
fi
PG_BIN="$(pg_bindir)"
