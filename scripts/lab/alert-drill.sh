#!/usr/bin/env bash
# Drill on the running lab (`make demo`): the replica store goes away and the
# monitoring must say so. lab-storage is frozen (`docker pause`: a partition,
# connections hang, nothing is refused) while both app hosts keep counting;
# CounterReplicationBehind must fire in Prometheus and reach Alertmanager for
# every app host; then the store comes back and the alert must clear in both.
# Prints the times. Bounded: at most DRILL_TIMEOUT seconds per wait.
#   scripts/lab/alert-drill.sh    (make alert-drill; run by make drills)
set -euo pipefail
cd "$(dirname "$0")/../.."

PROMETHEUS=${PROMETHEUS:-http://127.0.0.1:9090}
ALERTMANAGER=${ALERTMANAGER:-http://127.0.0.1:9093}
ALERT=CounterReplicationBehind
TIMEOUT=${DRILL_TIMEOUT:-240}
STORE=lab-storage
HOSTS=(lab-app1 lab-app2)
PORTS=(8080 8081)

# Hosts (sorted, space-separated) with $ALERT firing in Prometheus / active in Alertmanager.
prometheus_firing() {
  curl -fsS "$PROMETHEUS/api/v1/alerts" | python3 -c '
import json, sys
alerts = json.load(sys.stdin)["data"]["alerts"]
print(" ".join(sorted(a["labels"].get("host", "?") for a in alerts
                      if a["labels"]["alertname"] == sys.argv[1] and a["state"] == "firing")))' "$ALERT"
}
alertmanager_active() {
  curl -fsS "$ALERTMANAGER/api/v2/alerts?active=true&silenced=false&inhibited=false" | python3 -c '
import json, sys
print(" ".join(sorted(a["labels"].get("host", "?") for a in json.load(sys.stdin)
                      if a["labels"]["alertname"] == sys.argv[1] and a["status"]["state"] == "active")))' "$ALERT"
}
all_up() {
  curl -fsS "$PROMETHEUS/api/v1/targets?state=active" | python3 -c '
import json, sys
targets = json.load(sys.stdin)["data"]["activeTargets"]
down = [t["scrapeUrl"] for t in targets if t["health"] != "up"]
print("down: " + " ".join(down) if down else "", end="")
sys.exit(1 if down or not targets else 0)'
}

# App hosts (by port) whose readiness is not green: a host still starting
# (the drill before may have rebooted it) would be "replication down", not
# behind, once the store is frozen.
not_ready() {
  local port not=""
  for port in "${PORTS[@]}"; do
    curl -fsS -o /dev/null --max-time 5 "127.0.0.1:$port/healthz" || not+="$port "
  done
  printf '%s' "$not"
}

started=$(date +%s.%N)
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(date +%s.%N)"; }
# Wait until `$1` prints exactly `$2`; prints the seconds since $3.
wait_for() {
  local check=$1 want=$2 from=$3 got=""
  for _ in $(seq $((TIMEOUT * 2))); do
    got=$($check 2>/dev/null || true)
    if [ "$got" = "$want" ]; then since "$from"; return 0; fi
    sleep 0.5
  done
  echo "timed out after ${TIMEOUT}s waiting for $check to say '$want' (last: '$got')" >&2
  return 1
}

writer_pid=""
cleanup() {
  [ -z "$writer_pid" ] || kill "$writer_pid" 2>/dev/null || true
  if [ "$(docker inspect -f '{{.State.Paused}}' "$STORE" 2>/dev/null)" = true ]; then
    docker unpause "$STORE" >/dev/null
  fi
}
trap cleanup EXIT

echo "checking: every app host ready, every target up, $ALERT firing nowhere"
wait_for not_ready "" "$started" >/dev/null
wait_for all_up "" "$started" >/dev/null
[ -z "$(prometheus_firing)" ] || { echo "$ALERT already firing before the drill: $(prometheus_firing)" >&2; exit 1; }

# Visits on every app host the whole time: the replica falls behind only
# while there are writes it has not got.
(
  while true; do
    for port in "${PORTS[@]}"; do curl -fsS -o /dev/null --max-time 5 "127.0.0.1:$port/" || true; done
    sleep 0.2
  done
) &
writer_pid=$!

want="${HOSTS[*]}"
docker pause "$STORE" >/dev/null
paused=$(date +%s.%N)
echo "$(date -u +%T) paused $STORE (the store hangs; visits go on)"
fired=$(wait_for prometheus_firing "$want" "$paused")
echo "$(date -u +%T) $ALERT firing in Prometheus for $want: ${fired}s after the pause"
notified=$(wait_for alertmanager_active "$want" "$paused")
echo "$(date -u +%T) $ALERT active in Alertmanager: ${notified}s after the pause"
for i in "${!HOSTS[@]}"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "127.0.0.1:${PORTS[$i]}/healthz")
  echo "  ${HOSTS[$i]} /healthz: $code"
done

docker unpause "$STORE" >/dev/null
unpaused=$(date +%s.%N)
echo "$(date -u +%T) unpaused $STORE"
cleared=$(wait_for prometheus_firing "" "$unpaused")
echo "$(date -u +%T) $ALERT cleared in Prometheus: ${cleared}s after the store came back"
resolved=$(wait_for alertmanager_active "" "$unpaused")
echo "$(date -u +%T) $ALERT resolved in Alertmanager: ${resolved}s after the store came back"
kill "$writer_pid" 2>/dev/null || true
writer_pid=""
for i in "${!HOSTS[@]}"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "127.0.0.1:${PORTS[$i]}/healthz")
  echo "  ${HOSTS[$i]} /healthz: $code"
done
echo "alert drill passed: fired after ${fired}s (Alertmanager ${notified}s), cleared ${cleared}s (Alertmanager ${resolved}s) after the store's return"
