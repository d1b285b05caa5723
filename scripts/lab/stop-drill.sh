#!/usr/bin/env bash
# Drill on the running lab (`make demo`): `make stop` + `make start` keep the
# last writes. The app hosts stop before the storage host and get the time
# their units need, so each Litestream's final sync finds the store: after the
# start, every host's guard finds its local position equal to its replica's,
# and the counts go on.
#   scripts/lab/stop-drill.sh    (run by `make drills`)
set -euo pipefail
cd "$(dirname "$0")/../.."

declare -A port=([lab-app1]=8080 [lab-app2]=8081) last
for host in lab-app1 lab-app2; do
  for _ in $(seq 20); do
    last[$host]=$(curl -fsS "127.0.0.1:${port[$host]}/" | awk '{print $6}')
  done
done
make stop
make start
status=0
for host in lab-app1 lab-app2; do
  line=$(docker exec "$host" journalctl -b -u litestream --no-pager -o cat |
         grep -E '^Local TXID [0-9]+, replica TXID [0-9]+' | tail -1)
  read -r local replica < <(sed -E 's/^Local TXID ([0-9]+), replica TXID ([0-9]+).*/\1 \2/' <<<"$line")
  next=""
  for _ in $(seq 30); do
    next=$(curl -fsS "127.0.0.1:${port[$host]}/" 2>/dev/null | awk '{print $6}') && [ -n "$next" ] && break
    sleep 1
  done
  echo "$host: last count ${last[$host]}, next ${next}; at start local TXID $local, replica TXID $replica"
  if [ "$local" != "$replica" ] || [ "$next" != "$((last[$host] + 1))" ]; then
    echo "$host: the last writes did not reach the replica before the stop" >&2
    status=1
  fi
done
exit $status
