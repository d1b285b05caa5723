#!/usr/bin/env bash
# Build the local systemd base image for lab and Molecule hosts with
# debootstrap, once: nothing can be pulled from a registry here.
#   scripts/lab/build-image.sh [SUITE]   (SUITE: bookworm (default) or trixie)
# Image: counter-lab/debian:SUITE. Rebuilt only when missing (FORCE=1 rebuilds).
set -euo pipefail

suite=${1:-bookworm}
image="counter-lab/debian:${suite}"
log() { printf 'build-image: %s\n' "$*" >&2; }

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$image" >/dev/null 2>&1; then
  exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  log "installing debootstrap from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq debootstrap >/dev/null
fi

# What every test host has before Ansible runs: systemd as PID 1, Python for
# Ansible (python3-apt for its apt module), venv for the app (and packaging,
# for Ansible's pip module), the SSH tools the SFTP replica needs, and the
# tools testinfra uses (ps, ss).
packages=systemd,systemd-sysv,dbus,python3,python3-apt,python3-venv,python3-packaging,ca-certificates,openssh-client,openssh-server,procps,iproute2,sqlite3,netbase

rootfs=$(mktemp -d /var/tmp/counter-lab-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
log "debootstrap $suite into $rootfs (about a minute)"
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" >"$rootfs.log" 2>&1 || {
  tail -20 "$rootfs.log" >&2; exit 1; }
rm -f "$rootfs.log"

# Each host gets its own identity: no baked-in machine-id or SSH host keys
# (the storage role generates host keys), and sshd stays off unless a role
# enables it.
: >"$rootfs/etc/machine-id"
rm -f "$rootfs"/etc/ssh/ssh_host_*
rm -f "$rootfs"/etc/systemd/system/multi-user.target.wants/ssh.service \
      "$rootfs"/etc/systemd/system/sshd.service
# Units that make no sense in a container.
for unit in systemd-firstboot.service getty.target console-getty.service; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
chroot "$rootfs" apt-get clean

log "importing $image"
tar -C "$rootfs" -c . | docker import \
  --change 'CMD ["/lib/systemd/systemd"]' \
  --change 'ENV container=docker' \
  - "$image" >/dev/null
log "built $image"
