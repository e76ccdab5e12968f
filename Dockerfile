# syntax=docker/dockerfile:1
# basalt: a drop-in replacement for redis-server. Build: docker build -t basalt .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY loadtest/Cargo.toml loadtest/Cargo.toml
COPY vendor vendor
COPY src src
COPY benches benches
COPY loadtest/src loadtest/src
RUN cargo build --release --locked --bin basalt \
 && install -D target/release/basalt /out/basalt

FROM debian:bookworm-slim
# redis-tools gives the image `redis-cli`, which healthchecks (`redis-cli ping`) expect.
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-tools ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd -r basalt && useradd -r -g basalt -d /data basalt \
 && mkdir -p /data && chown basalt:basalt /data
COPY --from=build /out/basalt /usr/local/bin/basalt
# Like the official redis image: `redis-server` as a name, so compose files keep working.
RUN ln -s /usr/local/bin/basalt /usr/local/bin/redis-server
USER basalt
WORKDIR /data
VOLUME /data
EXPOSE 6379
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD redis-cli -p 6379 ping | grep -q PONG || exit 1
# io_uring must be allowed: Docker's default seccomp profile blocks it on some versions;
# see README.md ("Docker") for the security_opt line. basalt says so at start if it is blocked.
ENTRYPOINT ["basalt"]
CMD ["--bind", "0.0.0.0", "--dir", "/data", "--protected-mode", "no"]
