# syntax=docker/dockerfile:1
#
# tokengate's container image: the release binary on Debian 12 slim, run as a non-root user.
#
#   docker build -t tokengate .
#   docker run --rm -p 8080:8080 -p 9090:9090 \
#     -v "$PWD/deploy:/etc/tokengate:ro" \
#     -e TOKENGATE_CLIENT_SECRET -e TOKENGATE_KEY \
#     tokengate
#
# The configuration is /etc/tokengate/tokengate.toml: mount a directory holding it there.
# In a container it must listen on all interfaces (`listen = "0.0.0.0:8080"`,
# `admin_listen = "0.0.0.0:9090"`), or nothing outside the container reaches it; keep the
# admin port off the public network. The embedded session store's default path
# (data/sessions) is under the working directory, /var/lib/tokengate: mount a volume there
# to keep sessions across container restarts. See docs/operations.md.
#
# Why Debian slim and not distroless: HEALTHCHECK runs a command inside the container, and
# distroless has none (no shell, no curl). Debian slim has bash, whose /dev/tcp speaks
# enough HTTP to ask /healthz without adding a package. The image shares the builder's
# Debian release, so the binary finds the same glibc. Orchestrators that probe over the
# network (Kubernetes) ignore HEALTHCHECK: see examples/kubernetes.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The registry and target directories are build caches, not layers: the binary is copied
# out of the cache in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && cp target/release/tokengate /usr/local/bin/tokengate

FROM debian:${DEBIAN_RELEASE}-slim
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/tokengate --create-home \
      --shell /usr/sbin/nologin tokengate
COPY --from=build /usr/local/bin/tokengate /usr/local/bin/tokengate
USER 10001:10001
WORKDIR /var/lib/tokengate
# The public listener and the admin listener (/healthz, /readyz, /metrics), as in the
# configuration; HEALTHCHECK_PORT tells the health check if yours differs.
EXPOSE 8080 9090
ENV HEALTHCHECK_PORT=9090
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${HEALTHCHECK_PORT} && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/tokengate"]
CMD ["run", "--config", "/etc/tokengate/tokengate.toml"]
