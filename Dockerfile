# switchyard in a container: build stage, then a small runtime stage.
#   docker build -t switchyard .
# See docker-compose.yml for two nodes on PostgreSQL.

# --- build: the release binary (Lua 5.4 and SQLite are compiled from
# vendored C sources, hence the full Rust image with gcc).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
COPY admin-ui admin-ui
COPY benches benches
COPY examples examples
RUN cargo build --release --locked --bin switchyard \
 && strip target/release/switchyard

# --- runtime: Debian slim (glibc, as built), curl for the health check,
# a non-root user that owns only its working directory.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/switchyard --create-home switchyard
COPY --from=build /src/target/release/switchyard /usr/local/bin/switchyard
USER switchyard
WORKDIR /var/lib/switchyard
# 8080: proxied traffic; 8081: admin API and UI (needs an explicit token
# when it listens beyond loopback: SWITCHYARD_ADMIN_TOKEN).
EXPOSE 8080 8081
HEALTHCHECK --interval=5s --timeout=2s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8081/healthz || exit 1
ENTRYPOINT ["switchyard"]
CMD ["--listen", "0.0.0.0:8080", "--admin-listen", "0.0.0.0:8081"]
