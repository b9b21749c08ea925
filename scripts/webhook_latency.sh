#!/bin/bash
# Receipt -> processed latency of signed HubSpot dealstage changes on the demo lake
# (BENCHMARKS.md, "Webhooks"). Run from the repository after `cargo build --release`:
#   bash scripts/webhook_latency.sh [DEALS]
set -euo pipefail
B=${REVLAKE:-$PWD/target/release/revlake}
DEALS=${1:-20000}
WORK=$(mktemp -d)
PROJ=$WORK/project
LAKE=$WORK/lake
PORT=${PORT:-18099}
mkdir -p "$PROJ/datasets"
cp -r pipelines schemas transforms jobs "$PROJ/"
cp -r datasets/seeds "$PROJ/datasets/"
cat > "$PROJ/pipelines/demo.toml" <<TOML
description = "The demo workspace, with the HubSpot webhook receiver (latency measurement)."
lake = "$LAKE"
workspace = "demo"

[webhooks]
hubspot_secret_env = "HS_SECRET"
TOML
cd "$PROJ"
"$B" -q --lake "$LAKE" demo --deals "$DEALS" --runs 500 > "$WORK/demo.log" 2>&1
DEAL=$("$B" -q --lake "$LAKE" sql --format csv "SELECT CAST(hs_object_id AS VARCHAR) FROM raw.hubspot_deals WHERE workspace_id = 'demo' AND NOT CAST(hs_is_closed AS BOOLEAN) LIMIT 1" | tail -1)
echo "deal $DEAL (work folder $WORK)"
export HS_SECRET=s3cret
"$B" --lake "$LAKE" serve --addr "127.0.0.1:$PORT" --log-format json > "$WORK/serve.log" 2>&1 &
PID=$!
sleep 4
for stage in contractsent decisionmakerboughtin presentationscheduled; do
  python3 "$OLDPWD/scripts/webhook_send_hubspot.py" "$PORT" "$DEAL" "$stage" s3cret
  sleep 25
done
kill -TERM $PID
wait $PID || true
"$B" -q --lake "$LAKE" sql "SELECT status, latency_ms FROM ops.webhook_events WHERE latency_ms IS NOT NULL ORDER BY latency_ms"
