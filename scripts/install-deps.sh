#!/bin/sh
# Installs what the gateway needs on a fresh Debian bookworm machine.
# One script for every place that builds or runs the project: the Makefile,
# .ci/run and the Dockerfile, so a missing package shows up everywhere at once.
#
#   scripts/install-deps.sh build     compilers and -dev packages (default)
#   scripts/install-deps.sh runtime   shared libraries only (the container image)
#   scripts/install-deps.sh test      build + what the test suite drives
#   scripts/install-deps.sh fuzz      build + clang and its libFuzzer runtime (make fuzz)
#
# Packages already present are not reinstalled; the script is quick on a
# machine that has them.
set -eu

what=${1:-build}

runtime_pkgs="librdkafka1 libmongoc-1.0-0 libbson-1.0-0 libwebsockets17 libwebsockets-evlib-ev libev4 libjansson4 libsqlite3-0 libssl3 ca-certificates"
build_pkgs="build-essential pkg-config librdkafka-dev libmongoc-dev libbson-dev libwebsockets-dev libjansson-dev libsqlite3-dev libssl-dev libev-dev uthash-dev"
test_pkgs="libcmocka-dev kcat sqlite3 haproxy chromium docker-compose systemd podman runc debootstrap golang-github-containernetworking-plugin-dnsname default-jdk-headless maven golang-go python3-pip"
# clang only recommends its runtime, where libFuzzer lives.
fuzz_pkgs="clang libclang-rt-14-dev"

case "$what" in
  runtime) pkgs=$runtime_pkgs ;;
  build)   pkgs="$runtime_pkgs $build_pkgs" ;;
  test)    pkgs="$runtime_pkgs $build_pkgs $test_pkgs" ;;
  fuzz)    pkgs="$runtime_pkgs $build_pkgs $fuzz_pkgs" ;;
  -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
  *) echo "install-deps: unknown set '$what' (use build, runtime, test or fuzz)" >&2; exit 2 ;;
esac

missing=""
for p in $pkgs; do
  # A tool the machine already has from elsewhere (a JDK, Go, pip) counts as present.
  case "$p" in
    default-jdk-headless) command -v java >/dev/null 2>&1 && command -v javac >/dev/null 2>&1 && continue ;;
    maven) command -v mvn >/dev/null 2>&1 && continue ;;
    golang-go) command -v go >/dev/null 2>&1 && continue ;;
    python3-pip) python3 -m pip --version >/dev/null 2>&1 && continue ;;
  esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done

if [ -n "$missing" ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "install-deps: installing$missing" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ "$what" = test ]; then
  here=$(cd "$(dirname "$0")/.." && pwd)
  # pip may refuse a system Python (PEP 668); the override is safe for a test machine.
  python3 -m pip install -q -r "$here/tests/requirements.txt" 2>/dev/null \
    || python3 -m pip install -q --break-system-packages -r "$here/tests/requirements.txt"
fi
