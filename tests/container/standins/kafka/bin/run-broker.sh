#!/bin/sh
# The broker, configured as apache/kafka's image is: each KAFKA_FOO_BAR
# variable is the property foo.bar; CLUSTER_ID formats an empty log folder.
set -eu
props=/tmp/server.properties
: > "$props"
env | while IFS='=' read -r name value; do
  case "$name" in
    KAFKA_HEAP_OPTS|KAFKA_HOME) ;;
    KAFKA_*) key=$(printf '%s' "${name#KAFKA_}" | tr 'A-Z_' 'a-z.'); printf '%s=%s\n' "$key" "$value" >> "$props" ;;
  esac
done
logs=$(sed -n 's/^log\.dirs=//p' "$props")
if [ ! -f "$logs/meta.properties" ]; then
  /opt/kafka/bin/kafka-run-class.sh kafka.tools.StorageTool format -t "${CLUSTER_ID:?}" -c "$props" --ignore-formatted
fi
exec /opt/kafka/bin/kafka-run-class.sh kafka.Kafka "$props"
