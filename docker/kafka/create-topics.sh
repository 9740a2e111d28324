#!/bin/sh
# Creates the topics the gateway uses, with the kafka image's own tools.
# Run once by the kafka-init service of docker-compose.yml; safe to run again
# (--if-not-exists), so `docker compose up` after a restart is a no-op.
#
# Settings (environment):
#   KAFKA_BOOTSTRAP     broker to talk to            (default kafka:9092)
#   TOPIC               topic name                   (default notifications)
#   DLQ_TOPIC           its dead-letter topic        (default $TOPIC.dlq)
#   NODE_IDS            the gateways' --node-id values, space-separated: each
#                       gets its inbox $TOPIC.inbox.ID (default gateway-1)
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
node_ids=${NODE_IDS:-gateway-1}
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

# Several gateways (docs/adr/0001-many-gateways.md): who holds which user,
# compacted, one partition, read whole by every gateway at its start...
"$topics" --bootstrap-server "$bootstrap" --create --if-not-exists \
  --topic "$topic.presence" --partitions 1 --replication-factor "$replication" \
  --config cleanup.policy=compact --config delete.retention.ms=86400000 \
  --config segment.ms=3600000 --config min.cleanable.dirty.ratio=0.1 \
  --config message.timestamp.type=LogAppendTime
# ...and each gateway's inbox, one partition (order), kept as long as the
# notifications topic keeps its records (the broker's default retention).
for id in $node_ids; do
  "$topics" --bootstrap-server "$bootstrap" --create --if-not-exists \
    --topic "$topic.inbox.$id" --partitions 1 --replication-factor "$replication"
done

# A topic made earlier keeps its partition count: show it rather than
# alter it, since adding partitions moves users' keys to other partitions.
"$topics" --bootstrap-server "$bootstrap" --describe --topic "$topic" | head -n 1
echo "create-topics: topics '$topic', '$dlq_topic', '$topic.presence' and the inboxes of: $node_ids are ready"
