#!/usr/bin/env bash
# Drill on the running lab (`make demo`): a deploy with Ansible's own linear
# strategy (no Mitogen) and every deprecation warning shown. ansible.cfg
# runs Mitogen and silences deprecation warnings, whose only one with
# Mitogen is Ansible's own about third-party strategies; here any other
# deprecation fails the drill, as does a deploy that is not a no-op.
#   scripts/lab/stock-strategy-deploy.sh    (run by `make drills`)
set -euo pipefail
cd "$(dirname "$0")/../.."

log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(date +%s)
ANSIBLE_STRATEGY=linear ANSIBLE_DEPRECATION_WARNINGS=True \
  .venv/bin/ansible-playbook -i inventory/lab site.yml "$@" >"$log" 2>&1 || {
  tail -40 "$log"; echo "stock-strategy deploy: FAILED"; exit 1; }
seconds=$(($(date +%s) - start))
grep -E '^\S+ +: ok=' "$log"
status=0
if grep -q 'DEPRECATION WARNING' "$log"; then
  grep -A3 'DEPRECATION WARNING' "$log"
  echo "stock-strategy deploy: deprecation warnings (above)"; status=1
fi
if grep -E '^\S+ +: ok=' "$log" | grep -vq 'changed=0 '; then
  echo "stock-strategy deploy: not a no-op on the deployed lab"; status=1
fi
echo "stock-strategy deploy: ${seconds} s, $( [ $status = 0 ] && echo passed || echo FAILED)"
exit $status
