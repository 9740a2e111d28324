# The notification gateway image: build/consumer (the daemon) and
# build/producer, with the web test client.
#
#   docker build -t notification-gateway .
#   docker run -p 8083:8083 -e KAFKA_BROKERS=... -e MONGODB_URI=... notification-gateway
#
# Both stages install their packages through scripts/install-deps.sh, the
# same script the Makefile and CI use, so the image cannot drift from them.

FROM debian:bookworm-slim AS build
WORKDIR /src
# The package layer first: it changes rarely, so source edits reuse it.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN sh scripts/install-deps.sh build && rm -rf /var/lib/apt/lists/*
COPY . .
RUN make -j"$(nproc)" all


FROM debian:bookworm-slim
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN sh /tmp/install-deps.sh runtime \
 && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh \
 && groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid gateway --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin gateway \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/notification-gateway

COPY --from=build /src/build/consumer /src/build/producer /usr/local/bin/
COPY docker/gateway-ready /usr/local/bin/gateway-ready
COPY web/ /usr/share/notification-gateway/web/
# Fail the build, not the first start, when a shared library is missing.
RUN ! ldd /usr/local/bin/consumer /usr/local/bin/producer | grep 'not found'

ENV PORT=8083 \
    WEB_ROOT=/usr/share/notification-gateway/web \
    KAFKA_BROKERS=kafka:9092 \
    MONGODB_URI=mongodb://mongo:27017/

# A numeric id, so runtimes that enforce non-root can verify it.
USER 10001:10001
# The gateway's own state (EMBEDDED=true keeps its SQLite store in
# data/ here), writable by uid 10001; a volume, so a new container keeps it.
WORKDIR /var/lib/notification-gateway
VOLUME /var/lib/notification-gateway
EXPOSE 8083

# Healthy means ready (docker/gateway-ready asks GET /readyz); the start
# period covers joining the consumer group.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/gateway-ready"]

ENTRYPOINT ["/usr/local/bin/consumer"]
