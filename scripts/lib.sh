# shellcheck shell=bash
# Shared by scripts/up and scripts/test (source it, don't run it). It exists so that both
# README commands work the same way on a fresh Debian machine and on a set-up one: every
# ensure_* function does nothing when the service already answers, and otherwise
# installs/starts it (local hosts only). All waiting goes through poll_until.

set -euo pipefail

# ---------------------------------------------------------------------------- basics

log() { printf '==> %s\n' "$*" >&2; }
die() {
  printf '==> error: %s\n' "$*" >&2
  exit 1
}

# The repository root (the parent of this file's directory), without needing git.
ledger_repo_root() { (cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P); }

LEDGER_ROOT="$(ledger_repo_root)"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/ledger}"
export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:9092}"
export LEDGER_NATS_URL="${LEDGER_NATS_URL:-nats://127.0.0.1:4222}"
export LEDGER_RABBITMQ_URL="${LEDGER_RABBITMQ_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
export LEDGER_STATE_DIR="${LEDGER_STATE_DIR:-$LEDGER_ROOT/target/dev}"
mkdir -p "$LEDGER_STATE_DIR"

LEDGER_TANSU_INSTALL=(cargo install tansu --locked --version 0.6.0 --features 'dynostore,postgres')

# poll_until SECONDS DESCRIPTION COMMAND...
# Runs COMMAND (output discarded) every 0.2 s until it succeeds; fails with a message
# once SECONDS have passed.
poll_until() {
  local seconds=$1 what=$2
  shift 2
  local now deadline
  now=${EPOCHREALTIME//[.,]/}
  deadline=$((now + seconds * 1000000))
  until "$@" >/dev/null 2>&1; do
    now=${EPOCHREALTIME//[.,]/}
    if ((now >= deadline)); then
      printf '==> error: gave up after %ss waiting for %s\n' "$seconds" "$what" >&2
      return 1
    fi
    sleep 0.2
  done
}

# Runs a command as root (directly when we are root, else through sudo).
as_root() {
  if ((EUID == 0)); then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    die "need root (or sudo) to run: $*"
  fi
}

# apt_install PACKAGE...: `apt-get update` once per script run, then install.
LEDGER_APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found; install these yourself: $*"
  if ((LEDGER_APT_UPDATED == 0)); then
    log "apt-get update"
    as_root apt-get update -qq
    LEDGER_APT_UPDATED=1
  fi
  log "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# is_local HOST: true for the loopback names we are willing to provision on.
is_local() { [[ $1 == localhost || $1 == 127.* || $1 == ::1 ]]; }

# tcp_open HOST PORT: true when something accepts TCP connections there (2 s timeout).
# shellcheck disable=SC2016 # $0/$1 belong to the inner bash.
tcp_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null; }

# split_host_port HOSTPORT DEFAULT_PORT: prints "HOST PORT" for host, host:port,
# [v6], [v6]:port (a scheme:// prefix is ignored). An empty host becomes 127.0.0.1.
split_host_port() {
  local hp=${1#*://} default_port=$2 host port=
  if [[ $hp == \[* ]]; then
    host=${hp#\[}
    host=${host%%\]*}
    port=${hp#*\]}
    port=${port#:}
  elif [[ $hp == *:*:* ]]; then # bare IPv6 address, no port
    host=$hp
  elif [[ $hp == *:* ]]; then
    host=${hp%:*}
    port=${hp##*:}
  else
    host=$hp
  fi
  printf '%s %s\n' "${host:-127.0.0.1}" "${port:-$default_port}"
}

# pg_url_parts URL: prints "HOST PORT DBNAME" of postgres://user@host:port/db or
# postgresql://user:pass@host:port/db?params (port 5432, db = user name, by default).
pg_url_parts() {
  local rest=${1#*://} authority db user host port
  rest=${rest%%\?*}
  rest=${rest%%#*}
  authority=${rest%%/*}
  db=
  [[ $rest == */* ]] && db=${rest#*/}
  user=
  if [[ $authority == *@* ]]; then
    user=${authority%@*}
    user=${user%%:*}
  fi
  read -r host port < <(split_host_port "${authority##*@}" 5432)
  printf '%s %s %s\n' "$host" "$port" "${db:-${user:-${USER:-postgres}}}"
}

# pg_url_with_db URL DBNAME: the same URL (credentials, host, parameters) naming another
# database.
pg_url_with_db() {
  local url=$1 db=$2 scheme='' rest query=''
  if [[ $url == *://* ]]; then
    scheme="${url%%://*}://"
    rest=${url#*://}
  else
    rest=$url
  fi
  [[ $rest == *\?* ]] && query="?${rest#*\?}"
  rest=${rest%%\?*}
  printf '%s%s/%s%s\n' "$scheme" "${rest%%/*}" "$db" "$query"
}

# ------------------------------------------------------------------------ PostgreSQL

# pg_answers HOST PORT: 0 when the server accepts connections. With pg_isready, returns
# its code (1 = up but rejecting, e.g. still starting; 2 = no answer); without it, a
# TCP probe.
pg_answers() {
  if command -v pg_isready >/dev/null && pg_isready --version >/dev/null 2>&1; then
    local rc=0
    pg_isready -q -t 3 -h "$1" -p "$2" || rc=$?
    return "$rc"
  fi
  tcp_open "$1" "$2" || return 2
}

# pg_hba_trusted HBA: true when, by pg_hba.conf's first-match rule, every connection over
# the Unix socket and from 127.0.0.1 (and ::1, if listed) reaches a `trust` line.
pg_hba_trusted() {
  awk '
    function method(  m) {
      if ($1 == "local") return $4
      m = $5
      if ($4 !~ /\// && $5 ~ /^[0-9.:]+$/ && $5 ~ /[.:]/) m = $6 # address + netmask form
      return m
    }
    function consider(c) {
      if (done[c]) return
      if (method() != "trust") bad = 1
      else if ($2 == "all" && $3 == "all") done[c] = 1
    }
    /^[[:space:]]*(#|$)/ || $2 == "replication" { next }
    $1 == "local" { consider("local"); next }
    $1 ~ /^host/ {
      if ($4 ~ /^(127\.0\.0\.1(\/32)?|127\.0\.0\.0(\/8)?|0\.0\.0\.0(\/0)?|all|samehost|samenet|localhost)$/) consider("v4")
      if ($4 ~ /^(::1(\/128)?|::(0)?(\/0)?|all|samehost|samenet|localhost)$/) consider("v6")
    }
    END { exit !(!bad && done["local"] && done["v4"]) }' "$1"
}

# pg_trust_local HBA: a development cluster must trust local connections (the ledger's
# default DATABASE_URL has no password). When it doesn't yet, puts a marked block at the
# top of pg_hba.conf (first match wins; the original rules stay below it, and a backup
# is kept). Prints "changed" when it edited the file.
pg_trust_local() {
  local hba=$1 begin='# ledger dev (scripts/lib.sh): trust local connections' end='# end ledger dev'
  if [[ ! -f $hba ]]; then
    log "warning: $hba not found; leaving authentication as it is"
    return 0
  fi
  pg_hba_trusted "$hba" && return 0
  log "making $hba trust local connections (development machine; backup: $hba.ledger-orig)"
  [[ -e $hba.ledger-orig ]] || cp -p "$hba" "$hba.ledger-orig"
  local tmp
  tmp=$(mktemp)
  {
    printf '%s\n' "$begin" \
      'local   all   all                  trust' \
      'host    all   all   127.0.0.1/32   trust' \
      'host    all   all   ::1/128        trust' \
      "$end"
    # Any earlier (since altered) block of ours is replaced, not stacked.
    awk -v b="$begin" -v e="$end" '$0 == b { skip = 1; next } skip && $0 == e { skip = 0; next } !skip' "$hba"
  } >"$tmp"
  cat "$tmp" >"$hba" # keeps the file's owner and mode
  rm -f "$tmp"
  echo changed
}

# ensure_postgres [URL]: makes the server of URL (default DATABASE_URL) answer.
ensure_postgres() {
  local url=${1:-$DATABASE_URL} host port _db rc=0
  read -r host port _db < <(pg_url_parts "$url")
  pg_answers "$host" "$port" || rc=$?
  if ((rc == 0)); then return 0; fi
  if ((rc == 1)); then # up but not accepting yet (starting, recovering)
    log "PostgreSQL on $host:$port is starting; waiting"
    poll_until 60 "PostgreSQL on $host:$port" pg_answers "$host" "$port" || exit 1
    return 0
  fi
  is_local "$host" || die "PostgreSQL at $host:$port (from the database URL) does not answer, and it is not a local host this script may provision. Start it, or point DATABASE_URL elsewhere."

  log "PostgreSQL is not answering on $host:$port; provisioning a local server"
  if ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || ! command -v pg_ctlcluster >/dev/null; then
    apt_install postgresql postgresql-client
  fi
  local version
  version=$(compgen -G '/usr/lib/postgresql/*/bin/postgres' | cut -d/ -f5 | sort -V | tail -n 1) ||
    die "no PostgreSQL server binaries under /usr/lib/postgresql"

  # Prefer the cluster that already owns this port; else create one.
  local name=${LEDGER_PG_CLUSTER:-main} cluster_version cluster_name
  read -r cluster_version cluster_name < <(pg_lsclusters -h 2>/dev/null |
    awk -v p="$port" '$3 == p { print $1, $2; exit }') || true
  if [[ -z ${cluster_version:-} ]]; then
    local other_port
    other_port=$(pg_lsclusters -h 2>/dev/null | awk -v v="$version" -v n="$name" '$1 == v && $2 == n { print $3 }')
    if [[ -n $other_port ]]; then
      die "cluster $version/$name uses port $other_port, not $port: point the database URL at port $other_port (and start it: pg_ctlcluster $version $name start), or set LEDGER_PG_CLUSTER=<new name> to create a cluster on $port"
    fi
    log "creating cluster $version/$name on port $port"
    as_root pg_createcluster --port "$port" "$version" "$name" -- --auth=trust >/dev/null
    cluster_version=$version cluster_name=$name
  fi

  local changed
  changed=$(pg_trust_local "/etc/postgresql/$cluster_version/$cluster_name/pg_hba.conf")
  local status
  status=$(pg_lsclusters -h | awk -v v="$cluster_version" -v n="$cluster_name" '$1 == v && $2 == n { print $4 }')
  if [[ $status == online* ]]; then
    [[ -z $changed ]] || as_root pg_ctlcluster --skip-systemctl-redirect "$cluster_version" "$cluster_name" reload
  else
    log "starting cluster $cluster_version/$cluster_name"
    as_root pg_ctlcluster --skip-systemctl-redirect "$cluster_version" "$cluster_name" start
  fi
  if ! poll_until 60 "PostgreSQL on $host:$port" pg_answers "$host" "$port"; then
    tail -n 20 "/var/log/postgresql/postgresql-$cluster_version-$cluster_name.log" >&2 2>/dev/null || true
    exit 1
  fi
  log "PostgreSQL $cluster_version/$cluster_name answers on $host:$port"
}

# Installs psql if missing (Debian's client package).
ensure_psql() {
  command -v psql >/dev/null && psql --version >/dev/null 2>&1 && return 0
  apt_install postgresql-client
}

# psql_admin URL ARGS...: psql against URL's server, maintenance database `postgres`.
psql_admin() {
  local url=$1
  shift
  psql -X -q -v ON_ERROR_STOP=1 -d "$(pg_url_with_db "$url" postgres)" "$@"
}

# ensure_aiosmtpd: a Python 3 that can import aiosmtpd, for the delivery specs' real SMTP
# server (Debian's python3-aiosmtpd, for the system Python). Prints nothing when present.
ensure_aiosmtpd() {
  if /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || python3 -c 'import aiosmtpd' 2>/dev/null; then
    return 0
  fi
  apt_install python3-aiosmtpd
}

# ensure_chromium: Debian's Chromium and its WebDriver, for the console's browser specs
# (a test tool's own browser download does not work here).
ensure_chromium() {
  if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    return 0
  fi
  apt_install chromium chromium-driver
}

# ensure_axe: axe-core, the accessibility checker the console's specs run in each page,
# from the npm registry (npm_config_registry, else npmjs.org), checked against the
# integrity npm publishes for it; exports AXE_CORE_JS, its script.
LEDGER_AXE_VERSION=4.14.1
LEDGER_AXE_INTEGRITY=sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ==
ensure_axe() {
  local dir=$LEDGER_STATE_DIR/axe-core-$LEDGER_AXE_VERSION
  export AXE_CORE_JS=$dir/axe.min.js
  [[ -s $AXE_CORE_JS ]] && return 0
  command -v curl >/dev/null || apt_install curl
  local registry=${npm_config_registry:-https://registry.npmjs.org/}
  local url=${registry%/}/axe-core/-/axe-core-$LEDGER_AXE_VERSION.tgz
  local tarball=$LEDGER_STATE_DIR/axe-core-$LEDGER_AXE_VERSION.tgz
  log "fetching axe-core $LEDGER_AXE_VERSION from $url"
  curl -fsSL --retry 3 -o "$tarball" "$url" || die "could not fetch $url"
  local integrity
  integrity=sha512-$(python3 -c 'import base64, hashlib, sys
print(base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$tarball")
  if [[ $integrity != "$LEDGER_AXE_INTEGRITY" ]]; then
    rm -f "$tarball"
    die "axe-core $LEDGER_AXE_VERSION from $url is not what npm published (integrity $integrity)"
  fi
  mkdir -p "$dir"
  tar -xzf "$tarball" -C "$dir" --strip-components=1 package/axe.min.js package/LICENSE
  rm -f "$tarball"
}

# ensure_promtool: Prometheus's promtool (Debian's prometheus package), which checks and
# unit-tests the alert rules under deploy/prometheus.
ensure_promtool() {
  command -v promtool >/dev/null && return 0
  apt_install prometheus
}

# ensure_database [URL]: creates the database named in URL (default DATABASE_URL).
ensure_database() {
  local url=${1:-$DATABASE_URL} _host _port db exists
  read -r _host _port db < <(pg_url_parts "$url")
  ensure_psql
  # Variables are interpolated from stdin only (not with -c): :'x' literal, :"x" name.
  exists=$(psql_admin "$url" -tA -v name="$db" <<<"SELECT 1 FROM pg_database WHERE datname = :'name'")
  if [[ -z $exists ]]; then
    log "creating database $db"
    psql_admin "$url" -v name="$db" <<<'CREATE DATABASE :"name"'
  fi
}

# -------------------------------------------------------------------------- Tansu

tansu_bin() {
  if command -v tansu >/dev/null; then
    command -v tansu
  elif [[ -x $HOME/.cargo/bin/tansu ]]; then
    printf '%s\n' "$HOME/.cargo/bin/tansu"
  else
    return 1
  fi
}

# Probe for poll_until: the broker listens, or the process we started has died.
tansu_up_or_gone() { tcp_open "$1" "$2" || ! kill -0 "$3" 2>/dev/null; }

# ensure_tansu: makes the first broker of KAFKA_BROKERS answer, starting a local Tansu
# (in-memory storage) that outlives this script if nothing listens there.
ensure_tansu() {
  local host port
  read -r host port < <(split_host_port "${KAFKA_BROKERS%%,*}" 9092)
  tcp_open "$host" "$port" && return 0
  is_local "$host" || die "no Kafka broker answers at $host:$port (first of KAFKA_BROKERS), and it is not a local host this script may start one on"

  if ! tansu_bin >/dev/null; then
    command -v cargo >/dev/null || die "cargo not found; install Rust (rustup) first"
    log "installing the Tansu broker: ${LEDGER_TANSU_INSTALL[*]} (takes about 9 minutes, once)"
    "${LEDGER_TANSU_INSTALL[@]}"
  fi
  local bin pid_file=$LEDGER_STATE_DIR/tansu.pid log_file=$LEDGER_STATE_DIR/tansu.log pid=
  bin=$(tansu_bin)
  mkdir -p "$LEDGER_STATE_DIR"

  # A broker we started earlier may still be coming up: wait for it instead.
  if [[ -f $pid_file ]]; then
    pid=$(<"$pid_file")
    if ! kill -0 "$pid" 2>/dev/null || ! grep -q tansu "/proc/$pid/cmdline" 2>/dev/null; then
      pid=
    fi
  fi
  if [[ -z $pid ]]; then
    local address=$host
    [[ $host == *:* ]] && address="[$host]"
    local listener="tcp://$address:$port"
    log "starting Tansu on $listener (log: $log_file)"
    setsid nohup "$bin" broker --listener-url "$listener" --advertised-listener-url "$listener" \
      --storage-engine memory://tansu/ </dev/null >"$log_file" 2>&1 &
    pid=$!
    echo "$pid" >"$pid_file"
  else
    log "Tansu (pid $pid) is starting; waiting"
  fi
  poll_until 30 "Tansu on $host:$port" tansu_up_or_gone "$host" "$port" "$pid" || true
  if ! tcp_open "$host" "$port"; then
    tail -n 20 "$log_file" >&2 2>/dev/null || true
    die "Tansu did not start listening on $host:$port (log: $log_file)"
  fi
  log "Tansu (pid $pid) listens on $host:$port"
}

# host and port of a URL like nats://host:port or amqp://user:pass@host:port/vhost.
url_host_port() {
  local rest=${1#*://}
  rest=${rest##*@}
  rest=${rest%%/*}
  split_host_port "$rest" "$2"
}

# ensure_nats: makes NATS with JetStream answer at LEDGER_NATS_URL, installing Debian's
# nats-server and starting it (JetStream on, its store under /var/lib/nats-server, as the
# machine starts it) if nothing listens there.
ensure_nats() {
  local host port
  read -r host port < <(url_host_port "$LEDGER_NATS_URL" 4222)
  tcp_open "$host" "$port" && return 0
  is_local "$host" || die "no NATS server answers at $host:$port (LEDGER_NATS_URL), and it is not a local host this script may start one on"
  command -v nats-server >/dev/null || [[ -x /usr/sbin/nats-server ]] || apt_install nats-server
  local bin
  bin=$(command -v nats-server || echo /usr/sbin/nats-server)
  log "starting NATS with JetStream on $host:$port"
  as_root mkdir -p /var/lib/nats-server
  as_root start-stop-daemon --start --oknodo --background --exec "$bin" -- \
    -a "$host" -p "$port" -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  poll_until 30 "NATS on $host:$port" tcp_open "$host" "$port" || die "NATS did not start (log: /var/log/nats-server.log)"
}

# ensure_rabbitmq: makes RabbitMQ answer at LEDGER_RABBITMQ_URL, installing Debian's
# rabbitmq-server and starting it detached if nothing listens there.
ensure_rabbitmq() {
  local host port
  read -r host port < <(url_host_port "$LEDGER_RABBITMQ_URL" 5672)
  tcp_open "$host" "$port" && return 0
  is_local "$host" || die "no RabbitMQ answers at $host:$port (LEDGER_RABBITMQ_URL), and it is not a local host this script may start one on"
  command -v rabbitmq-server >/dev/null || [[ -x /usr/sbin/rabbitmq-server ]] || apt_install rabbitmq-server
  log "starting RabbitMQ on $host:$port (takes a few seconds)"
  as_root rabbitmq-server -detached
  poll_until 90 "RabbitMQ on $host:$port" tcp_open "$host" "$port" || die "RabbitMQ did not start (logs under /var/log/rabbitmq)"
}

# ---------------------------------------------------------------------- Rust build

# rdkafka builds the bundled librdkafka (C compiler, make) against the system OpenSSL.
ensure_build_tools() {
  command -v cargo >/dev/null || die "cargo not found; install Rust (rustup) first"
  if ! command -v cc >/dev/null || ! command -v make >/dev/null ||
    ! pkg-config --exists openssl 2>/dev/null; then
    apt_install build-essential pkg-config libssl-dev zlib1g-dev
  fi
}

# report_crashes MARKER: prints the stacks of every core dumped under the repository since
# MARKER was touched (the kernel's core_pattern `core` writes it in the crashed process's
# working directory), with gdb, installed for the purpose.
report_crashes() {
  local marker=$1 core binary
  while IFS= read -r core; do
    command -v gdb >/dev/null || apt_install gdb
    binary=$(gdb -batch -c "$core" 2>/dev/null | sed -n "s/^Core was generated by \`\([^ ']*\).*/\1/p")
    log "a test process crashed: $core (${binary:-unknown binary})"
    # The crashed thread first, then every thread's innermost frames.
    gdb -batch -ex 'bt 60' -ex 'info threads' -ex 'thread apply all bt 12' \
      ${binary:+"$binary"} "$core" 2>&1 | grep -v '^\[New LWP' | head -800 || true
  done < <(find "$LEDGER_ROOT" -maxdepth 3 -type f \( -name core -o -name 'core.[0-9]*' \) -newer "$marker" 2>/dev/null)
}
