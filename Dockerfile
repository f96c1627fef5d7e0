# syntax=docker/dockerfile:1
#
# The webhooks image: the release binary on a slim Debian with CA certificates and libpq, run as
# an unprivileged user. `webhooks version` in it prints the build arguments below:
#
#   docker build -t webhooks \
#     --build-arg COMMIT="$(git rev-parse --short HEAD)" \
#     --build-arg BUILD_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)" .
#
# VERSION defaults to `v` + the crate version; a blank BUILD_DATE means the time of the build.
# The build context has no .git (see .dockerignore), so without COMMIT the commit prints `-`.

ARG RUST_VERSION=1.95
ARG DEBIAN_SUITE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_SUITE} AS builder
# libpq for diesel's PostgreSQL driver; OpenSSL, make and a C++ compiler for librdkafka.
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ libpq-dev libssl-dev make pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY benches benches
COPY migrations migrations
COPY src src
COPY console console
COPY openapi.yaml ./
ARG VERSION=
ARG BUILD_DATE=
ARG COMMIT=
# Or, instead of BUILD_DATE, the commit's time for a reproducible date: $(git log -1 --format=%ct).
ARG SOURCE_DATE_EPOCH=
# The registry and target directories are cache mounts: a rebuild after a source change compiles
# this crate only. The binary leaves the cache mount for the next stage by a copy, without the
# release profile's line tables (80 MB, for profiling) but with its symbols (named backtraces).
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    WEBHOOKS_VERSION="$VERSION" WEBHOOKS_BUILD_DATE="$BUILD_DATE" WEBHOOKS_COMMIT="$COMMIT" \
    SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" cargo build --release --locked --bin webhooks \
    && install -D -m 0755 target/release/webhooks /out/webhooks \
    && strip --strip-debug /out/webhooks

FROM debian:${DEBIAN_SUITE}-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libpq5 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 webhooks \
    && useradd --system --uid 10001 --gid webhooks --home-dir /var/lib/webhooks --create-home \
        --shell /usr/sbin/nologin webhooks
COPY --from=builder /out/webhooks /usr/local/bin/webhooks
ARG VERSION=
ARG BUILD_DATE=
ARG COMMIT=
LABEL org.opencontainers.image.title="webhooks" \
      org.opencontainers.image.description="Self-hosted webhook delivery: Kafka events in, HMAC-signed HTTP POSTs out." \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.revision="${COMMIT}"
# A numeric user, so that Kubernetes' runAsNonRoot can check it. Its home is the working
# directory, where the embedded SQLite file goes when no PostgreSQL URI is set.
USER 10001:10001
WORKDIR /var/lib/webhooks
EXPOSE 8080
ENTRYPOINT ["webhooks"]
CMD ["serve"]
