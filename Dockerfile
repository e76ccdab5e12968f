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
# The basalt user has the redis image's uid and gid (999), so a /data volume written by
# redis is already basalt's.
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-tools ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd -r -g 999 basalt && useradd -r -g basalt -u 999 -d /data basalt \
 && mkdir -p /data && chown basalt:basalt /data
COPY --from=build /out/basalt /usr/local/bin/basalt
# Like the official redis image: `redis-server` as a name, so scripts calling it keep working.
RUN ln -s /usr/local/bin/basalt /usr/local/bin/redis-server
COPY docker/entrypoint.sh /usr/local/bin/docker-entrypoint.sh
WORKDIR /data
VOLUME /data
EXPOSE 6379
# Alive also when a password is set (NOAUTH answers too); -LOADING counts as not ready.
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD redis-cli -p 6379 ping 2>&1 | grep -qE 'PONG|NOAUTH' || exit 1
# io_uring must be allowed: Docker's default seccomp profile blocks it on some versions;
# see README.md ("Docker") for the security_opt line. basalt says so at start if it is blocked.
# The entry point takes what the redis image takes (`redis-server ...`, bare options, a
# config file), starts as root only to chown /data, and runs basalt as the basalt user.
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["basalt"]
