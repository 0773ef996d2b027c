# Caretaker in a container: a multi-stage build (the toolchain stays in the first stage), a small
# Debian runtime, a non-root user. See docs/deployment.md for a Kubernetes CronJob and the
# systemd units. Not built by CI here (the CI machine reaches no container registry).
#
#   docker build -t caretaker .
#   docker run --rm -v "$PWD/srv:/srv/caretaker" caretaker run pipelines/nightly.toml
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Only the binary: the tests' services (PostgreSQL, Redis, S3) are not needed to build it.
RUN cargo build --release --locked -p caretaker \
    && install -D target/release/caretaker /out/caretaker

FROM debian:bookworm-slim
# ca-certificates: HTTPS to object storage, OSV and webhooks; the PostgreSQL client for the
# postgres_maintenance task's pg_dump (leave it out if the task is not used).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates postgresql-client \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /srv/caretaker --create-home caretaker
COPY --from=build /out/caretaker /usr/local/bin/caretaker
USER caretaker
WORKDIR /srv/caretaker
ENTRYPOINT ["/usr/local/bin/caretaker"]
CMD ["--help"]
