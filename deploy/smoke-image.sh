#!/usr/bin/env bash
# Smoke test of the image: build it, then run its processes the way a deployment does (one container each, the
# unprivileged user, host networking) against the Postgres, RabbitMQ and Redis this machine already runs, and
# place the demo order through the api until the provider simulator completes it. Leaves nothing behind: its
# own database (panelflow_image_smoke), AMQP prefix and containers are removed on exit.
#
#   deploy/smoke-image.sh [IMAGE]        (default panelflow:smoke; SKIP_BUILD=1 uses IMAGE as it is)
#
# Ports used on 127.0.0.1: 18080 (api), 18090 (simulator), 19100-19103 (operations ports).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${1:-panelflow:smoke}
DB=panelflow_image_smoke
PREFIX=imagesmoke
PG_URL=${PANELFLOW_PG_ADMIN_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
API=http://127.0.0.1:18080
WORK=$(mktemp -d)
chmod 777 "$WORK"  # the containers' user (uid 10001) writes the demo key here
ENV=(
    -e PANELFLOW_ENV=development
    -e "PANELFLOW_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/$DB" -e "PANELFLOW_AMQP_PREFIX=$PREFIX"
    -e PANELFLOW_API_HOST=127.0.0.1 -e PANELFLOW_API_PORT=18080
    -e PANELFLOW_SIM_HOST=127.0.0.1 -e PANELFLOW_SIM_PORT=18090
    -e PANELFLOW_UPSTREAM_ALLOW_HTTP=true -e PANELFLOW_UPSTREAM_ALLOWED_NETWORKS=127.0.0.1/32
    -e PANELFLOW_METRICS_HOST=127.0.0.1 -e PANELFLOW_METRICS_PORT_API=19100 -e PANELFLOW_METRICS_PORT_WORKER=19101
    -e PANELFLOW_METRICS_PORT_WEBHOOKS=19102 -e PANELFLOW_METRICS_PORT_SIM=19103
)
PROCESSES=(provider_sim api worker webhooks)

cleanup() {
    for p in "${PROCESSES[@]}"; do docker rm -f "smoke-$p" >/dev/null 2>&1 || true; done
    docker run --rm --network host "${ENV[@]}" --entrypoint python "$IMAGE" -c "
import asyncio, aio_pika
from shared.messaging import topology
from shared.settings import Settings
async def main():
    s = Settings()
    async with await aio_pika.connect(s.amqp_url) as c:
        ch = await c.channel()
        for q in topology.all_queue_names(s): await ch.queue_delete(q)
        for e in topology.all_exchange_names(s): await ch.exchange_delete(e)
asyncio.run(main())" >/dev/null 2>&1 || true
    psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
    echo "smoke-image: FAILED: $*" >&2
    for p in "${PROCESSES[@]}"; do echo "--- smoke-$p" >&2; docker logs --tail 20 "smoke-$p" >&2 2>&1 || true; done
    exit 1
}

if [ -z "${SKIP_BUILD:-}" ]; then
    docker build -q -f deploy/Dockerfile -t "$IMAGE" . >/dev/null
fi
psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
run() { docker run --rm --network host "${ENV[@]}" -v "$WORK:/out" "$IMAGE" "$@"; }
run panelflow migrate >"$WORK/setup.log" 2>&1 || { cat "$WORK/setup.log" >&2; fail "panelflow migrate"; }
run panelflow demo seed --key-file /out/demo-key >"$WORK/demo.env" 2>"$WORK/setup.log" \
    || { cat "$WORK/setup.log" >&2; fail "panelflow demo seed"; }
for p in "${PROCESSES[@]}"; do
    docker run -d --name "smoke-$p" --network host "${ENV[@]}" "$IMAGE" python -m "services.$p" >/dev/null
done
for _ in $(seq 60); do curl -sf "$API/healthz" >/dev/null && break; sleep 0.5; done
[ "$(docker exec smoke-api id -u)" = 10001 ] || fail "the api does not run as uid 10001"

KEY=$(cat "$WORK/demo-key")
SERVICE=$(sed -n 's/^PANELFLOW_DEMO_SERVICE=//p' "$WORK/demo.env")
call() { curl -s -X POST "$API/api/v2" --data-urlencode "key=$KEY" "$@"; }
placed=$(call -d action=add -d "service=$SERVICE" -d link=https://instagram.com/p/smoke -d quantity=100 \
    -d request_id=smoke-1)
order=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["order"])' <<<"$placed") || fail "add: $placed"
echo "smoke-image: order $order placed"
status=""
for _ in $(seq 60); do
    status=$(call -d action=status -d "order=$order")
    case "$status" in *'"Completed"'*) break ;; esac
    sleep 1
done
case "$status" in *'"Completed"'*) ;; *) fail "order $order not completed: $status" ;; esac
echo "smoke-image: order $order Completed: $status"

for p in "${PROCESSES[@]}"; do
    docker stop -t 30 "smoke-$p" >/dev/null
    code=$(docker inspect -f '{{.State.ExitCode}}' "smoke-$p")
    [ "$code" = 0 ] || fail "smoke-$p exited with $code on SIGTERM"
done
echo "smoke-image: OK ($IMAGE: migrate, demo seed, four processes, an order completed, clean SIGTERM exits)"
