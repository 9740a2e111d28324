#!/bin/sh
# Checks the container setup as far as a machine without a Docker engine can:
#
#   - docker-compose.yml is valid (docker-compose config -q, and `docker
#     compose config -q` too where that plugin exists), has the services the
#     README promises, and every file it bind-mounts exists;
#   - the Dockerfile builds on debian:bookworm-slim, copies only files that
#     exist and that .dockerignore does not exclude, runs the scripts it names
#     from the repository, runs as a non-root USER, EXPOSEs 8083, has a
#     HEALTHCHECK that needs no curl/wget, and has an ENTRYPOINT;
#   - every shell script in docker/ passes `sh -n` (`bash -n` for bash ones).
#
# Prints one line per check; exits 1 after listing every failure.
# Run from anywhere: `make check-docker` or scripts/check-docker.sh.
set -eu

cd "$(dirname "$0")/.."

failures=0
ok() { printf 'ok    %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; failures=$((failures + 1)); }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---------------------------------------------------------------- compose --
compose_file=docker-compose.yml
if [ ! -f "$compose_file" ]; then
  fail "$compose_file: missing"
else
  validators=""
  command -v docker-compose >/dev/null 2>&1 && validators="docker-compose"
  docker compose version >/dev/null 2>&1 && validators="$validators docker_compose_v2"
  if [ -z "$validators" ]; then
    fail "$compose_file: neither docker-compose nor 'docker compose' is installed to validate it (scripts/install-deps.sh test installs docker-compose)"
  fi
  # The secret comes from .env (make .env) on a real host; a placeholder
  # lets the file be rendered here.
  export JWT_SECRET="${JWT_SECRET:-placeholder-for-check-docker}"
  for v in $validators; do
    case $v in
      docker-compose) cmd="docker-compose" ;;
      docker_compose_v2) cmd="docker compose" ;;
    esac
    if $cmd -f "$compose_file" config -q >"$tmp/err" 2>&1; then
      ok "$compose_file: valid for $cmd ($($cmd version --short 2>/dev/null || echo '?'))"
    else
      fail "$compose_file: $cmd config rejects it:"
      sed 's/^/        /' "$tmp/err"
    fi
  done

  # The rendered config has every service, profiles included, in a fixed form.
  if command -v docker-compose >/dev/null 2>&1 \
      && docker-compose -f "$compose_file" config >"$tmp/config.yml" 2>/dev/null; then
    services=$(docker-compose -f "$compose_file" config --services 2>/dev/null | tr '\n' ' ')
    missing=""
    for s in kafka kafka-init mongo gateway gateway-2 producer; do
      case " $services " in *" $s "*) ;; *) missing="$missing $s" ;; esac
    done
    if [ -z "$missing" ]; then ok "$compose_file: services $services"
    else fail "$compose_file: services missing:$missing (has: $services)"; fi

    # Several gateways: gateway-2 only with the cluster profile, each node
    # with its own id and host port, and kafka-init making their topics.
    awk '
      /^  [A-Za-z0-9_-]+:$/ { svc = $1; sub(/:$/, "", svc) }
      /^[a-z]/ { svc = "" }
      svc != "" && $1 == "NODE_ID:" { print svc, "id", $2 }
      svc != "" && $1 == "NODE_IDS:" { $1 = ""; print svc, "ids", $0 }
      svc != "" && /published:/ { print svc, "port", $NF }
      svc != "" && $1 == "-" && $2 == "cluster" { print svc, "profile", "cluster" }
    ' "$tmp/config.yml" >"$tmp/nodes"
    id1=$(awk '$1 == "gateway" && $2 == "id" { print $3 }' "$tmp/nodes")
    id2=$(awk '$1 == "gateway-2" && $2 == "id" { print $3 }' "$tmp/nodes")
    port1=$(awk '$1 == "gateway" && $2 == "port" { print $3 }' "$tmp/nodes")
    port2=$(awk '$1 == "gateway-2" && $2 == "port" { print $3 }' "$tmp/nodes")
    ids=$(awk '$1 == "kafka-init" && $2 == "ids" { $1 = $2 = ""; print }' "$tmp/nodes")
    if ! grep -q "^gateway-2 profile cluster" "$tmp/nodes"; then
      fail "$compose_file: no gateway-2 in a \"cluster\" profile"
    elif [ -z "$id1" ] || [ -z "$id2" ] || [ "$id1" = "$id2" ]; then
      fail "$compose_file: gateway and gateway-2 need distinct NODE_IDs (have '$id1', '$id2')"
    elif [ "$port1" != 8083 ] || [ -z "$port2" ] || [ "$port1" = "$port2" ]; then
      fail "$compose_file: gateway on 8083 and gateway-2 on another host port (have '$port1', '$port2')"
    else
      ok "$compose_file: cluster profile: $id1 on $port1, $id2 on $port2"
    fi
    missing_ids=""
    for id in $id1 $id2; do
      case " $ids " in *" $id "*) ;; *) missing_ids="$missing_ids $id" ;; esac
    done
    if [ -n "$missing_ids" ]; then fail "$compose_file: kafka-init's NODE_IDS lacks$missing_ids (no inbox would be made)"
    else ok "$compose_file: kafka-init makes the inboxes of$ids"; fi
    if grep -q 'presence' docker/kafka/create-topics.sh && grep -q 'cleanup.policy=compact' docker/kafka/create-topics.sh \
        && grep -q 'inbox.\$id' docker/kafka/create-topics.sh; then
      ok "docker/kafka/create-topics.sh: makes the compacted presence topic and each inbox"
    else
      fail "docker/kafka/create-topics.sh: does not make the presence topic (compacted) and the inboxes"
    fi

    # Conditions the start order relies on.
    for c in service_completed_successfully service_healthy; do
      if grep -q "condition: $c" "$tmp/config.yml"; then ok "$compose_file: depends_on uses $c"
      else fail "$compose_file: no depends_on with condition $c (gateway must wait for kafka-init and mongo)"; fi
    done

    # Bind mounts: "source:target[:mode]" strings whose source is a host path.
    sed -n 's/^ *- \(\/[^:]*\):\/.*/\1/p' "$tmp/config.yml" | sort -u >"$tmp/binds"
    while IFS= read -r src; do
      if [ -e "$src" ]; then ok "$compose_file: bind-mounted $src exists"
      else fail "$compose_file: bind-mounts $src, which does not exist"; fi
    done <"$tmp/binds"
  fi
fi

# ------------------------------------------------------------- Dockerfile --
df=Dockerfile
if [ ! -f "$df" ]; then
  fail "$df: missing"
else
  # One instruction a line: join continuation lines, drop comments.
  awk '
    /^[[:space:]]*#/ { next }
    { line = line $0 }
    /\\[[:space:]]*$/ { sub(/\\[[:space:]]*$/, " ", line); next }
    { if (line ~ /[^[:space:]]/) print line; line = "" }
  ' "$df" >"$tmp/df"

  froms=$(awk 'toupper($1) == "FROM" { print $2 }' "$tmp/df")
  stages=$(awk 'toupper($1) == "FROM" && toupper($3) == "AS" { print $4 }' "$tmp/df")
  bad_from=""
  for f in $froms; do
    case " $stages " in *" $f "*) continue ;; esac
    [ "$f" = debian:bookworm-slim ] || bad_from="$bad_from $f"
  done
  n_from=$(printf '%s\n' $froms | grep -c . || true)
  if [ -z "$froms" ]; then fail "$df: no FROM"
  elif [ -n "$bad_from" ]; then fail "$df: base images must be debian:bookworm-slim, found:$bad_from"
  else ok "$df: $n_from stage(s), all FROM debian:bookworm-slim"; fi

  # .dockerignore patterns, as plain paths without leading ./ or / and trailing /.
  ignored=""
  if [ -f .dockerignore ]; then
    ignored=$(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e 's|^\./||' -e 's|^/||' -e 's|/$||' .dockerignore | grep -v '^!' | grep . || true)
  fi

  # COPY/ADD sources from the build context (not --from=stage) must exist and not be ignored.
  awk 'toupper($1) == "COPY" || toupper($1) == "ADD" {
         from = 0; n = 0
         for (i = 2; i <= NF; i++) {
           if ($i ~ /^--from=/) from = 1
           else if ($i ~ /^--/) continue
           else args[++n] = $i
         }
         if (from || n < 2 || args[1] ~ /^\[/) next
         for (i = 1; i < n; i++) print args[i]
       }' "$tmp/df" >"$tmp/sources"
  while IFS= read -r src; do
    path=${src%/}
    path=${path#./}
    if [ "$path" = "." ]; then ok "$df: COPY . (context filtered by .dockerignore)"; continue; fi
    # shellcheck disable=SC2086 # globs in COPY sources are meant to expand here
    if ! ls -d $path >/dev/null 2>&1; then
      fail "$df: COPY source '$src' does not exist in the repository"
      continue
    fi
    hit=""
    for pat in $ignored; do
      case "$path" in $pat | $pat/*) hit=$pat ;; esac
    done
    if [ -n "$hit" ]; then fail "$df: COPY source '$src' is excluded by .dockerignore pattern '$hit'"
    else ok "$df: COPY source '$src' exists"; fi
  done <"$tmp/sources"

  # Repository scripts that RUN lines call by relative path.
  grep -i '^[[:space:]]*RUN[[:space:]]' "$tmp/df" \
    | grep -o '\(^\|[[:space:];&|(]\)\(\./\)\{0,1\}\(scripts\|docker\|tools\)/[A-Za-z0-9._/-]*' \
    | sed -e 's/^[[:space:];&|(]*//' -e 's|^\./||' | sort -u >"$tmp/runs" || true
  while IFS= read -r p; do
    [ -n "$p" ] || continue
    if [ -e "$p" ]; then ok "$df: RUN uses $p, which exists"
    else fail "$df: RUN uses $p, which does not exist"; fi
  done <"$tmp/runs"

  user=$(awk 'toupper($1) == "USER" { u = $2 } END { print u }' "$tmp/df")
  case "${user%%:*}" in
    "") fail "$df: no USER: the final stage would run as root" ;;
    root | 0) fail "$df: final USER is '$user' (root)" ;;
    *) ok "$df: runs as USER $user" ;;
  esac

  if awk 'toupper($1) == "EXPOSE" { for (i = 2; i <= NF; i++) if ($i == "8083" || $i == "8083/tcp") f = 1 } END { exit !f }' "$tmp/df"; then
    ok "$df: EXPOSE 8083"
  else
    fail "$df: does not EXPOSE 8083"
  fi

  hc=$(grep -i '^[[:space:]]*HEALTHCHECK[[:space:]]' "$tmp/df" | tail -n 1 || true)
  if [ -z "$hc" ]; then fail "$df: no HEALTHCHECK"
  elif printf '%s' "$hc" | grep -qi 'HEALTHCHECK[[:space:]]*NONE'; then fail "$df: HEALTHCHECK NONE"
  elif printf '%s' "$hc" | grep -q '\(curl\|wget\)'; then fail "$df: HEALTHCHECK calls curl/wget, which debian:bookworm-slim does not have"
  else ok "$df: HEALTHCHECK present (no curl/wget)"; fi

  if grep -qi '^[[:space:]]*ENTRYPOINT[[:space:]]' "$tmp/df"; then ok "$df: ENTRYPOINT set"
  else fail "$df: no ENTRYPOINT"; fi
fi

# ------------------------------------------------------- shell scripts ----
found=0
for f in $(find docker -type f 2>/dev/null | sort); do
  first=$(head -n 1 "$f")
  case "$f:$first" in
    *:'#!'*bash*) shell=bash ;;
    *.sh:* | *:'#!'*/sh | *:'#!'*/sh\ * | *:'#!'*env\ sh*) shell=sh ;;
    *) continue ;;
  esac
  found=$((found + 1))
  if $shell -n "$f" 2>"$tmp/err"; then ok "$f: $shell -n"
  else fail "$f: $shell -n reports a syntax error:"; sed 's/^/        /' "$tmp/err"; fi
done
[ "$found" -gt 0 ] || ok "docker/: no shell scripts to check"

# ------------------------------------------------------------------ end ----
if [ "$failures" -gt 0 ]; then
  echo "check-docker: $failures check(s) failed" >&2
  exit 1
fi
echo "check-docker: all checks passed"
