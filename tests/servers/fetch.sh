#!/bin/sh
# Prepares the real servers the integration tests run against, into a cache:
#
#   $CACHE/kafka-4.1.1/      Apache Kafka 4.1.1 jars from Maven Central
#                            (java -cp "$CACHE/kafka-4.1.1/*" kafka.Kafka ...)
#   $CACHE/ferretdb-1.24.2   FerretDB 1.24.2 (MongoDB wire protocol, SQLite
#                            backend), built from tests/servers/ferretdb
#   $CACHE/mongo-java-server-1.47.0/
#                            mongo-java-server 1.47.0 (MongoDB wire protocol,
#                            in memory) from Maven Central and its small main
#                            built from tests/servers/mongo-java-server
#                            (java -cp "$CACHE/mongo-java-server-1.47.0/*"
#                             local.gateway.tests.MongoJavaTestServer PORT)
#
# CACHE is $TEST_CACHE_DIR, or .cache at the top of the repository.
# Idempotent: a step whose result is present and complete is skipped (a stamp
# beside each result records the inputs it was made from; change the inputs
# and the step runs again). Safe to run from several processes at once.
#
# Needs: java, javac and mvn (a JDK 17 and Maven), go >= 1.24. Only Maven
# Central and the Go module proxy are contacted; ~/.m2 and Go's module cache
# are reused.
#
#   tests/servers/fetch.sh                     prepare all three
#   tests/servers/fetch.sh kafka               only Kafka
#   tests/servers/fetch.sh ferretdb            only FerretDB
#   tests/servers/fetch.sh mongo-java-server   only mongo-java-server
set -eu

KAFKA_VERSION=4.1.1
FERRETDB_VERSION=1.24.2
# Also the directory name tests/integration/servers.py looks for; passed to
# Maven, so it overrides the version in tests/servers/mongo-java-server/pom.xml.
MONGO_JAVA_SERVER_VERSION=1.47.0

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${TEST_CACHE_DIR:-$repo/.cache}

say() { echo "fetch.sh: $*" >&2; }
die() { echo "fetch.sh: ERROR: $*" >&2; exit 1; }
now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

what=${1:-all}
case "$what" in
  all|kafka|ferretdb|mongo-java-server) ;;
  -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
  *) die "unknown target '$what' (use all, kafka, ferretdb or mongo-java-server)" ;;
esac

mkdir -p "$cache" || die "cannot create cache directory $cache"
cache=$(cd "$cache" && pwd)

# One fetch at a time per cache (pytest-xdist workers, parallel make).
exec 9>"$cache/.fetch.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9 || die "cannot lock $cache/.fetch.lock"
fi

# Hash of the files a result is made from (so an edit re-runs the step).
inputs_hash() { cat "$@" | sha256sum | cut -d' ' -f1; }

fetch_kafka() {
  dest=$cache/kafka-$KAFKA_VERSION
  stamp=$dest/.complete
  pom=$here/kafka/pom.xml
  want="kafka $KAFKA_VERSION $(inputs_hash "$pom")"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "kafka $KAFKA_VERSION: cached in $dest ($(ls "$dest"/*.jar | wc -l) jars)"
    return 0
  fi
  command -v java >/dev/null 2>&1 || die "java not found: install a JDK 17 (Debian: default-jdk-headless)"
  command -v mvn >/dev/null 2>&1 || die "mvn not found: install Maven (Debian: maven)"
  say "kafka $KAFKA_VERSION: downloading jars from Maven Central into $dest ..."
  t0=$(now)
  tmp=$cache/.kafka-$KAFKA_VERSION.tmp.$$
  rm -rf "$tmp"
  log=$cache/.kafka-fetch.log
  if ! mvn -q -B -f "$pom" dependency:copy-dependencies -DoutputDirectory="$tmp" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    rm -rf "$tmp"
    die "kafka $KAFKA_VERSION: 'mvn dependency:copy-dependencies' failed (full log: $log)"
  fi
  for jar in kafka_2.13-$KAFKA_VERSION.jar kafka-clients-$KAFKA_VERSION.jar kafka-tools-$KAFKA_VERSION.jar \
             kafka-server-$KAFKA_VERSION.jar kafka-raft-$KAFKA_VERSION.jar kafka-metadata-$KAFKA_VERSION.jar \
             log4j-slf4j-impl-2.24.3.jar; do
    [ -s "$tmp/$jar" ] || { rm -rf "$tmp"; die "kafka $KAFKA_VERSION: $jar missing after download"; }
  done
  # Prove the class path starts: the storage tool is what the tests run first.
  if ! java -cp "$tmp/*" kafka.tools.StorageTool random-uuid >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    rm -rf "$tmp"
    die "kafka $KAFKA_VERSION: the downloaded jars do not run (java -cp ... kafka.tools.StorageTool)"
  fi
  rm -rf "$dest"
  mv "$tmp" "$dest"
  echo "$want" >"$stamp"
  say "kafka $KAFKA_VERSION: $(ls "$dest"/*.jar | wc -l) jars, $(du -sh "$dest" | cut -f1), took $(took "$t0")"
}

fetch_ferretdb() {
  dest=$cache/ferretdb-$FERRETDB_VERSION
  stamp=$dest.stamp
  src=$here/ferretdb
  # Only the SQLite backend is used: leave the PostgreSQL one out.
  tags=ferretdb_no_postgresql
  want="ferretdb $FERRETDB_VERSION tags=$tags $(inputs_hash "$src/main.go" "$src/go.mod" "$src/go.sum")"
  if [ -x "$dest" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "ferretdb $FERRETDB_VERSION: cached at $dest"
    return 0
  fi
  command -v go >/dev/null 2>&1 || die "go not found: FerretDB $FERRETDB_VERSION needs Go >= 1.24"
  gover=$(go env GOVERSION 2>/dev/null || true)
  case "$gover" in
    go1.[0-9]|go1.[0-9].*|go1.1[0-9]|go1.1[0-9].*|go1.2[0-3]|go1.2[0-3].*|"")
      die "ferretdb $FERRETDB_VERSION: needs Go >= 1.24, found '${gover:-unknown}' ($(command -v go))" ;;
  esac
  say "ferretdb $FERRETDB_VERSION: building with $gover (modules from the Go module proxy) ..."
  t0=$(now)
  tmp=$dest.tmp.$$
  log=$cache/.ferretdb-build.log
  # Pure Go (modernc.org/sqlite): no C toolchain needed. go.sum is committed,
  # so the default -mod=readonly verifies every module.
  if ! (cd "$src" && CGO_ENABLED=0 go build -tags "$tags" -trimpath -ldflags "-s -w" \
          -o "$tmp" .) >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    rm -f "$tmp"
    die "ferretdb $FERRETDB_VERSION: 'go build' in $src failed (full log: $log)"
  fi
  mv -f "$tmp" "$dest"
  echo "$want" >"$stamp"
  say "ferretdb $FERRETDB_VERSION: built $dest ($(du -h "$dest" | cut -f1)), took $(took "$t0")"
}

fetch_mongo_java_server() {
  version=$MONGO_JAVA_SERVER_VERSION
  dest=$cache/mongo-java-server-$version
  stamp=$dest/.complete
  src=$here/mongo-java-server
  main=local.gateway.tests.MongoJavaTestServer
  # shellcheck disable=SC2046  # the sources have no spaces in their names
  want="mongo-java-server $version $(inputs_hash "$src/pom.xml" $(find "$src/src" -type f -name '*.java' | LC_ALL=C sort))"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "mongo-java-server $version: cached in $dest ($(ls "$dest"/*.jar | wc -l) jars)"
    return 0
  fi
  command -v java >/dev/null 2>&1 || die "java not found: install a JDK 17 (Debian: default-jdk-headless)"
  command -v javac >/dev/null 2>&1 || die "javac not found: install a JDK 17, not only a JRE (Debian: default-jdk-headless)"
  command -v mvn >/dev/null 2>&1 || die "mvn not found: install Maven (Debian: maven)"
  say "mongo-java-server $version: building with Maven (jars from Maven Central) into $dest ..."
  t0=$(now)
  tmp=$cache/.mongo-java-server-$version.tmp.$$
  build=$cache/.mongo-java-server-$version.build.$$
  rm -rf "$tmp" "$build"
  log=$cache/.mongo-java-server-build.log
  # build.dir keeps Maven's target/ out of the source tree.
  if ! mvn -q -B -f "$src/pom.xml" -Dmongo-java-server.version="$version" -Dbuild.dir="$build" \
         package dependency:copy-dependencies -DoutputDirectory="$tmp" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    rm -rf "$tmp" "$build"
    die "mongo-java-server $version: 'mvn package' in $src failed (full log: $log)"
  fi
  mv "$build"/mongo-java-test-server-*.jar "$tmp"/
  rm -rf "$build"
  for jar in mongo-java-server-core-$version.jar mongo-java-server-memory-backend-$version.jar; do
    [ -s "$tmp/$jar" ] || { rm -rf "$tmp"; die "mongo-java-server $version: $jar missing after download"; }
  done
  # Prove it starts and listens (port 0: any free port), then stop it.
  java -Xmx128m -cp "$tmp/*" "$main" 0 >"$log" 2>&1 &
  pid=$!
  i=0
  while ! grep -q '^mongo-java-server ready on ' "$log" && kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do
    sleep 0.1
    i=$((i + 1))
  done
  ok=0
  grep -q '^mongo-java-server ready on ' "$log" && ok=1
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ $ok != 1 ]; then
    tail -n 40 "$log" >&2
    rm -rf "$tmp"
    die "mongo-java-server $version: the built server did not start (java -cp ... $main 0)"
  fi
  rm -rf "$dest"
  mv "$tmp" "$dest"
  echo "$want" >"$stamp"
  say "mongo-java-server $version: $(ls "$dest"/*.jar | wc -l) jars, $(du -sh "$dest" | cut -f1), took $(took "$t0")"
}

case "$what" in
  all) fetch_kafka; fetch_ferretdb; fetch_mongo_java_server ;;
  kafka) fetch_kafka ;;
  ferretdb) fetch_ferretdb ;;
  mongo-java-server) fetch_mongo_java_server ;;
esac
