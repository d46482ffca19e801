#!/usr/bin/env bash
# Make sure Postgres, RabbitMQ and Redis answer at the configured URLs (PANELFLOW_DATABASE_URL,
# PANELFLOW_AMQP_URL, PANELFLOW_REDIS_URL; defaults in shared/settings/). Idempotent; silent when all is fine.
#
# For each service that does not answer, in this order:
#   1. installed but stopped            -> start it (pg_ctlcluster / service, redis-server, rabbitmq-server);
#   2. not installed, running as root   -> apt-get install the distribution's package, then start it;
#   3. `docker info` works              -> start it from deploy/compose.yaml;
#   4. otherwise                        -> stop with a message that says exactly what is missing.
# A Postgres this script installed is also made to accept the configured login over TCP (a fresh Debian
# cluster asks for a password on 127.0.0.1): the role's password is set when the URL has one; otherwise the
# role gets `trust` from 127.0.0.1/::1 in pg_hba.conf (marked with a comment). For a Postgres installed
# before, that change is only made with PANELFLOW_SETUP_FIX_AUTH=1; without it you get the exact fix to apply.
#
# Knobs: PANELFLOW_SETUP_NO_INSTALL=1 (never apt-get), PANELFLOW_SETUP_NO_DOCKER=1 (never docker),
#        PANELFLOW_SETUP_DRY_RUN=1 (say what would be done, change nothing), PANELFLOW_SETUP_FIX_AUTH=1 (above).
# Needs the virtualenv (scripts/ensure-venv.sh): the probes use the project's own clients and settings.
set -euo pipefail

cd "$(dirname "$0")/.."
PY=.venv/bin/python
DRY_RUN=${PANELFLOW_SETUP_DRY_RUN:-0}
NO_INSTALL=${PANELFLOW_SETUP_NO_INSTALL:-0}
NO_DOCKER=${PANELFLOW_SETUP_NO_DOCKER:-0}
FIX_AUTH=${PANELFLOW_SETUP_FIX_AUTH:-0}
PG_SOCKET_DIR=${PANELFLOW_SETUP_PG_SOCKET_DIR:-/var/run/postgresql}
COMPOSE_FILE=deploy/compose.yaml

say() { echo "ensure-services: $*" >&2; }
die() {
    echo "ensure-services: ERROR: $*" >&2
    exit 1
}
run() {
    if [[ $DRY_RUN == 1 ]]; then
        say "would run: $*"
    else
        "$@"
    fi
}

[[ -x $PY ]] || die "no virtualenv at .venv: run scripts/ensure-venv.sh (or any make target) first"

# postgres_host, postgres_port, postgres_user, postgres_password, rabbitmq_*, redis_* (see shared/cli/probe.py)
eval "$($PY -m shared.cli.probe --urls)"

# probe NAME...: sets STATE[NAME] (ok | down | auth | error) and DETAIL[NAME] (the client's one-line reason).
declare -A STATE=() DETAIL=()
probe() {
    local line fields
    while read -r line; do
        read -r -a fields <<<"$line"
        STATE[${fields[0]}]=${fields[1]:-error}
        DETAIL[${fields[0]}]=${line#* * * * * }
    done < <($PY -m shared.cli.probe "$@" || true)
}

is_local() { [[ $1 == 127.0.0.1 || $1 == localhost || $1 == ::1 ]]; }
is_root() { [[ $(id -u) == 0 ]]; }

# wait_for NAME SECONDS: until the probe says ok (or, in a dry run, not at all).
wait_for() {
    [[ $DRY_RUN == 1 ]] && return 0
    local name=$1 deadline=$((SECONDS + $2))
    while :; do
        probe "$name"
        # A started server that refuses our login will not change its mind: that is handled further down.
        [[ ${STATE[$name]} == ok || ${STATE[$name]} == auth ]] && return 0
        ((SECONDS < deadline)) || die "$name was started but does not answer after $2 s: ${DETAIL[$name]}"
        sleep 1
    done
}

# --- installed? started how? -----------------------------------------------------------------------------------

postgres_installed() { command -v pg_ctlcluster >/dev/null || { command -v service >/dev/null && [[ -x /etc/init.d/postgresql ]]; }; }
rabbitmq_installed() { command -v rabbitmq-server >/dev/null; }
redis_installed() { command -v redis-server >/dev/null; }

start_postgres() {
    if command -v pg_lsclusters >/dev/null && command -v pg_ctlcluster >/dev/null; then
        local clusters ver name
        clusters=$(pg_lsclusters -h 2>/dev/null || true)
        if [[ -z $clusters ]]; then
            ver=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1)
            [[ -n $ver ]] || die "Postgres tools are installed but no server version is (apt-get install postgresql)"
            say "creating Postgres cluster $ver/main on port $postgres_port"
            run pg_createcluster "$ver" main --port "$postgres_port"
            clusters="$ver main $postgres_port down"
        fi
        read -r ver name _ < <(awk -v port="$postgres_port" '$3 == port' <<<"$clusters") || true
        if [[ -z ${ver:-} ]]; then
            die "Postgres is installed but none of its clusters uses port $postgres_port (pg_lsclusters:
$clusters
) — set PANELFLOW_DATABASE_URL to one of them, or create one: pg_createcluster <version> <name> --port $postgres_port --start"
        fi
        say "starting Postgres cluster $ver/$name"
        run pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start
    else
        say "starting Postgres (service postgresql start)"
        run service postgresql start
    fi
}

start_redis() {
    local dir=/var/lib/redis
    [[ -d $dir && -w $dir ]] || dir=$(mktemp -d)
    say "starting Redis on $redis_host:$redis_port"
    run redis-server --daemonize yes --bind "$redis_host" --port "$redis_port" --dir "$dir"
}

start_rabbitmq() {
    # Never start a second node next to a running one (same node name): it could not work.
    if command -v rabbitmqctl >/dev/null && timeout 20 rabbitmqctl -q status >/dev/null 2>&1; then
        die "a RabbitMQ node is running but does not answer at $rabbitmq_host:$rabbitmq_port: ${DETAIL[rabbitmq]}
      — check PANELFLOW_AMQP_URL against \`rabbitmqctl status\` (listeners)"
    fi
    say "starting RabbitMQ (rabbitmq-server -detached; takes a few seconds)"
    run rabbitmq-server -detached
}

# --- making a server we installed accept the configured login -----------------------------------------------

sql_literal() { printf "'%s'" "${1//\'/\'\'}"; }
sql_ident() { printf '"%s"' "${1//\"/\"\"}"; }

psql_as_postgres() {
    run runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -p "$postgres_port" -d postgres -c "$1"
}

pg_auth_fix_text() {
    if [[ -n $postgres_password ]]; then
        echo "set the role's password: runuser -u postgres -- psql -c \"ALTER ROLE $postgres_user WITH LOGIN SUPERUSER PASSWORD '…'\" (or CREATE ROLE)"
    else
        echo "either put a password in PANELFLOW_DATABASE_URL (postgresql://$postgres_user:PASSWORD@$postgres_host:$postgres_port/$postgres_path) and set it on the role,
      or allow passwordless TCP from this machine: add 'host all $postgres_user 127.0.0.1/32 trust' and 'host all $postgres_user ::1/128 trust' at the top of pg_hba.conf and reload,
      or rerun with PANELFLOW_SETUP_FIX_AUTH=1 to let this script do the latter"
    fi
}

fix_postgres_auth() {
    is_root || die "Postgres refuses the login of PANELFLOW_DATABASE_URL (${DETAIL[postgres]}); as root this script can fix it, or: $(pg_auth_fix_text)"
    local role exists hba
    role=$(sql_ident "$postgres_user")
    exists=$(runuser -u postgres -- psql -X -Atq -h "$PG_SOCKET_DIR" -p "$postgres_port" -d postgres \
        -c "SELECT 1 FROM pg_roles WHERE rolname = $(sql_literal "$postgres_user")" 2>/dev/null || true)
    if [[ $exists != 1 ]]; then
        say "creating Postgres role $postgres_user (superuser: panelflow creates its databases)"
        psql_as_postgres "CREATE ROLE $role WITH LOGIN SUPERUSER"
    fi
    if [[ -n $postgres_password ]]; then
        say "setting the password of Postgres role $postgres_user from PANELFLOW_DATABASE_URL"
        psql_as_postgres "ALTER ROLE $role WITH LOGIN PASSWORD $(sql_literal "$postgres_password")"
        return 0
    fi
    hba=$(runuser -u postgres -- psql -X -Atq -h "$PG_SOCKET_DIR" -p "$postgres_port" -d postgres -c "SHOW hba_file")
    [[ -f $hba ]] || die "cannot find pg_hba.conf of the Postgres on port $postgres_port; $(pg_auth_fix_text)"
    say "allowing passwordless TCP logins of $postgres_user from 127.0.0.1 and ::1 in $hba (then reloading)"
    if [[ $DRY_RUN != 1 ]]; then
        # pg_hba is read top-down, first match wins: the lines go before the distribution's scram lines.
        local tmp
        tmp=$(mktemp)
        {
            echo "# panelflow scripts/ensure-services.sh: passwordless TCP login from this machine, as the default URL expects"
            echo "host    all    $postgres_user    127.0.0.1/32    trust"
            echo "host    all    $postgres_user    ::1/128         trust"
            cat "$hba"
        } >"$tmp"
        cat "$tmp" >"$hba" # keeps the file's owner and mode
        rm -f "$tmp"
    fi
    psql_as_postgres "SELECT pg_reload_conf()" >/dev/null
}

fix_rabbitmq_auth() {
    is_root || die "RabbitMQ refuses the login of PANELFLOW_AMQP_URL (${DETAIL[rabbitmq]}); as root, create the user: rabbitmqctl add_user USER PASSWORD && rabbitmqctl set_permissions -p VHOST USER '.*' '.*' '.*'"
    local vhost=${rabbitmq_path:-/}
    if [[ $rabbitmq_user != guest ]]; then
        say "creating RabbitMQ user $rabbitmq_user"
        run rabbitmqctl -q add_user "$rabbitmq_user" "$rabbitmq_password" || true
    fi
    if [[ $vhost != / ]]; then
        say "creating RabbitMQ vhost $vhost"
        run rabbitmqctl -q add_vhost "$vhost" || true
    fi
    run rabbitmqctl -q set_permissions -p "$vhost" "$rabbitmq_user" '.*' '.*' '.*'
}

# --- the plan ------------------------------------------------------------------------------------------------

declare -A PACKAGE=([postgres]=postgresql [rabbitmq]=rabbitmq-server [redis]=redis-server)
declare -A WAIT_S=([postgres]=60 [rabbitmq]=120 [redis]=20)
missing=()
probe postgres rabbitmq redis

INSTALLED_NOW=()
for name in postgres rabbitmq redis; do
    [[ ${STATE[$name]} == down ]] || continue
    host_var=${name}_host
    host=${!host_var}
    port_var=${name}_port
    if ! is_local "$host"; then
        die "$name does not answer at $host:${!port_var} (${DETAIL[$name]}), and it is not on this machine: start it there or point the URL elsewhere"
    fi
    if "${name}_installed"; then
        "start_$name"
        wait_for "$name" "${WAIT_S[$name]}"
    else
        missing+=("$name")
    fi
done

if ((${#missing[@]})) && is_root && [[ $NO_INSTALL != 1 ]] && command -v apt-get >/dev/null; then
    packages=()
    for name in "${missing[@]}"; do packages+=("${PACKAGE[$name]}"); done
    say "installing ${packages[*]} with apt-get (a few minutes on a fresh machine)"
    run env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"
    for name in "${missing[@]}"; do
        INSTALLED_NOW+=("$name")
        # The package may have started it already (systemd); containers without an init system do not.
        probe "$name"
        if [[ ${STATE[$name]} == down || $DRY_RUN == 1 ]]; then
            "start_$name"
        fi
        wait_for "$name" "${WAIT_S[$name]}"
    done
    missing=()
fi

if ((${#missing[@]})) && [[ $NO_DOCKER != 1 ]] && command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    compose=(docker compose)
    docker compose version >/dev/null 2>&1 || compose=(docker-compose)
    say "starting ${missing[*]} from $COMPOSE_FILE with ${compose[*]}"
    PANELFLOW_PG_PORT=$postgres_port PANELFLOW_AMQP_PORT=$rabbitmq_port PANELFLOW_REDIS_PORT=$redis_port \
        run "${compose[@]}" -f "$COMPOSE_FILE" up -d "${missing[@]}"
    for name in "${missing[@]}"; do
        wait_for "$name" "${WAIT_S[$name]}"
    done
    missing=()
fi

if ((${#missing[@]})); then
    packages=()
    for name in "${missing[@]}"; do packages+=("${PACKAGE[$name]}"); done
    why=()
    is_root || why+=("not running as root")
    command -v apt-get >/dev/null || why+=("no apt-get")
    [[ $NO_INSTALL == 1 ]] && why+=("PANELFLOW_SETUP_NO_INSTALL=1")
    if [[ $NO_DOCKER == 1 ]]; then
        why+=("PANELFLOW_SETUP_NO_DOCKER=1")
    elif command -v docker >/dev/null; then
        why+=("\`docker info\` fails (daemon not running or no permission)")
    else
        why+=("no docker")
    fi
    die "missing: ${missing[*]} (nothing answers at the configured URLs and they are not installed).
  Could not install them: $(printf '%s; ' "${why[@]}")
  Fix one of: run as root on Debian/Ubuntu (installs: ${packages[*]});
              sudo apt-get install -y ${packages[*]};
              start Docker and rerun (uses $COMPOSE_FILE);
              or point PANELFLOW_DATABASE_URL / PANELFLOW_AMQP_URL / PANELFLOW_REDIS_URL at running servers."
fi

installed_now() { [[ " ${INSTALLED_NOW[*]} " == *" $1 "* ]]; }

if [[ ${STATE[postgres]} == auth ]]; then
    if installed_now postgres || [[ $FIX_AUTH == 1 ]]; then
        fix_postgres_auth
        probe postgres
    else
        die "Postgres at $postgres_host:$postgres_port refuses the login of PANELFLOW_DATABASE_URL: ${DETAIL[postgres]}
      Fix: $(pg_auth_fix_text)"
    fi
fi
if [[ ${STATE[rabbitmq]} == auth ]]; then
    if installed_now rabbitmq || [[ $FIX_AUTH == 1 ]]; then
        fix_rabbitmq_auth
        probe rabbitmq
    else
        die "RabbitMQ at $rabbitmq_host:$rabbitmq_port refuses the login of PANELFLOW_AMQP_URL: ${DETAIL[rabbitmq]}
      Fix: rabbitmqctl add_user USER PASSWORD && rabbitmqctl set_permissions -p / USER '.*' '.*' '.*' (or PANELFLOW_SETUP_FIX_AUTH=1)"
    fi
fi

[[ $DRY_RUN == 1 ]] && exit 0
failed=0
for name in postgres rabbitmq redis; do
    if [[ ${STATE[$name]} != ok ]]; then
        say "$name is not usable (${STATE[$name]}): ${DETAIL[$name]}"
        failed=1
    fi
done
((failed == 0)) || die "fix the services above and rerun"
