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

# Healthy means ready (GET /readyz): in its consumer group, Kafka and the
# store answering; the start period covers joining the group. The image
# has no curl: bash's /dev/tcp speaks just enough HTTP/1.0. With TLS on,
# --port speaks only TLS: it is then asked on the plain --health-listen
# (127.0.0.1:8084 unless HEALTH_LISTEN says otherwise).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["bash", "-c", "if [ -n \"$TLS_CERT_FILE\" ]; then hp=${HEALTH_LISTEN:-127.0.0.1:8084}; else hp=${HEALTH_LISTEN:-127.0.0.1:${PORT:-8083}}; fi; exec 3<>/dev/tcp/${hp%:*}/${hp##*:} && printf 'GET /readyz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q '^HTTP/[0-9.]* 200'"]

ENTRYPOINT ["/usr/local/bin/consumer"]
