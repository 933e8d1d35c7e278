# shellcheck shell=bash
# What scripts/up and scripts/test share: provisioning PostgreSQL and the Tansu broker
# when nothing answers, idempotently, so both README commands work on a fresh machine.

set -euo pipefail

LEDGER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/ledger}"
export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:9092}"
LEDGER_STATE_DIR="${LEDGER_STATE_DIR:-$LEDGER_ROOT/target/dev}"
TANSU_VERSION="0.6.0"
mkdir -p "$LEDGER_STATE_DIR"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# poll_until SECONDS DESCRIPTION COMMAND...: retries COMMAND every 0.2 s until it succeeds.
poll_until() {
  local seconds=$1 what=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "gave up after ${seconds}s waiting for $what"
    sleep 0.2
  done
}

# host_port URL DEFAULT_PORT: prints "host port" of a postgres:// URL or a host:port pair.
host_port() {
  local rest=${1#*://} default_port=$2
  rest=${rest#*@}          # drop credentials
  rest=${rest%%/*}         # drop the database and parameters
  rest=${rest%%\?*}
  local host=${rest%:*} port=${rest##*:}
  [[ $rest == *:* ]] || { host=$rest; port=$default_port; }
  printf '%s %s\n' "${host:-127.0.0.1}" "${port:-$default_port}"
}

is_local() { [[ $1 == 127.* || $1 == localhost || $1 == ::1 || $1 == "[::1]" ]]; }

tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

apt_install() {
  if [[ ! -f "$LEDGER_STATE_DIR/.apt-updated" ]]; then
    apt-get update -qq && touch "$LEDGER_STATE_DIR/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

ensure_build_tools() {
  # rdkafka builds the bundled librdkafka and links the system OpenSSL.
  if ! pkg-config --exists openssl 2>/dev/null || ! command -v make >/dev/null; then
    say "installing build dependencies (libssl-dev, pkg-config, make)"
    apt_install libssl-dev pkg-config make
  fi
}

ensure_postgres() {
  local host port
  read -r host port < <(host_port "$DATABASE_URL" 5432)
  if tcp_open "$host" "$port"; then return 0; fi
  is_local "$host" || die "PostgreSQL at $host:$port does not answer (DATABASE_URL)"
  say "PostgreSQL is not answering on $host:$port; provisioning a local cluster"
  if ! command -v pg_ctlcluster >/dev/null || [[ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]]; then
    apt_install postgresql postgresql-client
  fi
  local version
  version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  if ! pg_lsclusters -h 2>/dev/null | awk '{print $1, $2}' | grep -q "^$version main$"; then
    pg_createcluster "$version" main --port "$port" -- --auth-local=trust --auth-host=trust >/dev/null
  fi
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  if [[ -f $hba ]] && grep -Eq '^(local|host)\s.*\s(peer|md5|scram-sha-256)\s*$' "$hba"; then
    # A development cluster: trust local connections, as the ledger's defaults expect.
    sed -Ei 's/^((local|host)\s.*\s)(peer|md5|scram-sha-256)\s*$/\1trust/' "$hba"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  poll_until 60 "PostgreSQL on $host:$port" tcp_open "$host" "$port"
}

# The maintenance database on the same server as DATABASE_URL.
admin_url() {
  local base=${DATABASE_URL%%\?*}
  printf '%s/postgres\n' "${base%/*}"
}

ensure_database() {
  local name=${DATABASE_URL%%\?*}; name=${name##*/}
  command -v psql >/dev/null || { say "psql not found; assuming database $name exists"; return 0; }
  if [[ -z "$(psql "$(admin_url)" -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'")" ]]; then
    say "creating database $name"
    psql "$(admin_url)" -qc "CREATE DATABASE \"$name\"" >/dev/null
  fi
}

tansu_bin() {
  if command -v tansu >/dev/null; then command -v tansu
  elif [[ -x "$HOME/.cargo/bin/tansu" ]]; then printf '%s\n' "$HOME/.cargo/bin/tansu"
  else return 1
  fi
}

ensure_tansu() {
  local host port
  read -r host port < <(host_port "${KAFKA_BROKERS%%,*}" 9092)
  if tcp_open "$host" "$port"; then return 0; fi
  is_local "$host" || die "no Kafka broker answers at $host:$port (KAFKA_BROKERS)"
  if ! tansu_bin >/dev/null; then
    say "installing the Tansu broker $TANSU_VERSION (about 9 minutes, once)"
    cargo install tansu --locked --version "$TANSU_VERSION" --features dynostore,postgres
  fi
  say "starting Tansu on $host:$port (log: $LEDGER_STATE_DIR/tansu.log)"
  local url="tcp://$host:$port"
  (cd "$LEDGER_STATE_DIR" && setsid nohup "$(tansu_bin)" broker \
      --listener-url "$url" --advertised-listener-url "$url" \
      --storage-engine memory://tansu/ >"$LEDGER_STATE_DIR/tansu.log" 2>&1 &
   echo $! >"$LEDGER_STATE_DIR/tansu.pid")
  poll_until 30 "Tansu on $host:$port" tcp_open "$host" "$port"
}
