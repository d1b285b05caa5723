#!/usr/bin/env bash
# Make sure a Docker engine answers: install Debian's docker.io when there is
# no engine, start dockerd when it is installed but stopped. Idempotent.
set -euo pipefail

log() { printf 'ensure-docker: %s\n' "$*" >&2; }

if docker info >/dev/null 2>&1; then
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || { log "no Docker engine and not root: install docker.io yourself"; exit 1; }
  log "installing the Docker engine from Debian (docker.io)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    log "starting docker.service"
    systemctl start docker
  else
    log "starting dockerd (no systemd on this machine; log in /var/log/dockerd.log)"
    nohup dockerd >/var/log/dockerd.log 2>&1 &
  fi
fi

for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    log "Docker engine is up"
    exit 0
  fi
  sleep 1
done
log "the Docker engine did not come up within 60 s; see /var/log/dockerd.log"
exit 1
