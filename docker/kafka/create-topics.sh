#!/bin/sh
# Creates the topics the gateway uses, with the kafka image's own tools.
# Run once by the kafka-init service of docker-compose.yml; safe to run again
# (--if-not-exists), so `docker compose up` after a restart is a no-op.
#
# Settings (environment):
#   KAFKA_BOOTSTRAP     broker to talk to            (default kafka:9092)
#   TOPIC               topic name                   (default notifications)
#   DLQ_TOPIC           its dead-letter topic        (default $TOPIC.dlq)
#   PARTITIONS          partitions of a new topic    (default 3)
#   REPLICATION_FACTOR  replicas of a new topic      (default 1)
#   WAIT_SECONDS        how long to wait for Kafka   (default 120)
set -eu

bootstrap=${KAFKA_BOOTSTRAP:-kafka:9092}
topic=${TOPIC:-notifications}
dlq_topic=${DLQ_TOPIC:-$topic.dlq}
partitions=${PARTITIONS:-3}
replication=${REPLICATION_FACTOR:-1}
wait_seconds=${WAIT_SECONDS:-120}
topics=${KAFKA_HOME:-/opt/kafka}/bin/kafka-topics.sh

if [ ! -x "$topics" ]; then
  echo "create-topics: $topics not found: run this in the apache/kafka image (or set KAFKA_HOME)" >&2
  exit 1
fi

# The healthcheck usually got here first; this covers running without it.
start=$(date +%s)
until "$topics" --bootstrap-server "$bootstrap" --list >/dev/null 2>&1; do
  if [ $(( $(date +%s) - start )) -ge "$wait_seconds" ]; then
    echo "create-topics: Kafka at $bootstrap did not answer within ${wait_seconds}s; see 'docker compose logs kafka'" >&2
    exit 1
  fi
  echo "create-topics: waiting for Kafka at $bootstrap ..."
  sleep 2
done

for t in "$topic" "$dlq_topic"; do
  "$topics" --bootstrap-server "$bootstrap" --create --if-not-exists \
    --topic "$t" --partitions "$partitions" --replication-factor "$replication"
done

# A topic made earlier keeps its partition count: show it rather than
# alter it, since adding partitions moves users' keys to other partitions.
"$topics" --bootstrap-server "$bootstrap" --describe --topic "$topic" | head -n 1
echo "create-topics: topics '$topic' and '$dlq_topic' are ready"
