"""systemctl, for the units the guard starts and stops (Litestream's and
the app's), and the status line the guard shows in Litestream's unit
(`sd_notify` STATUS=)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess

from .errors import Refused
from .output import say
from .settings import Settings

SYSTEMCTL = "/usr/bin/systemctl"


def job(unit: str) -> tuple[str, str]:
    """(type, state) of the unit's pending job, or ("", "")."""
    out = subprocess.run(
        [SYSTEMCTL, "list-jobs", "--no-legend", "--plain", unit],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    return (out[2], out[3]) if len(out) >= 4 and out[1] == unit else ("", "")


def start_no_block(unit: str) -> None:
    subprocess.run([SYSTEMCTL, "start", "--no-block", unit], check=False)


def is_active_quiet(unit: str) -> bool:
    return subprocess.run([SYSTEMCTL, "is-active", "--quiet", unit], check=False).returncode == 0


def stop_units(settings: Settings) -> None:
    """The app, then Litestream (its final sync holds the app's last writes)."""
    subprocess.run([SYSTEMCTL, "stop", settings.app_unit, settings.unit], check=True)


def start_app(settings: Settings) -> None:
    """Start the app (and so Litestream); refused unless both then run."""
    say(f"Starting {settings.app_unit} ...")
    subprocess.run([SYSTEMCTL, "start", settings.app_unit], check=False)
    # The app's start is skipped (not failed) when Litestream's guard
    # refused: look at what runs.
    for unit in (settings.unit, settings.app_unit):
        state = subprocess.run(
            [SYSTEMCTL, "is-active", unit], capture_output=True, text=True, check=False
        ).stdout.strip()
        if state != "active":
            raise Refused(
                f"{unit} is {state}: see `journalctl -u {settings.unit} -u {settings.app_unit}`"
            )


def main_pid(unit: str) -> int:
    """The unit's main process (0 when it runs none)."""
    out = subprocess.run(
        [SYSTEMCTL, "show", "-p", "MainPID", "--value", unit],
        capture_output=True,
        text=True,
        check=False,
    )
    return int(out.stdout.strip() or 0) if out.stdout.strip().isdigit() else 0


def triggered_by(unit: str) -> list[str]:
    """The units that start ``unit`` on demand: its socket (socket
    activation), if it has one."""
    out = subprocess.run(
        [SYSTEMCTL, "show", "-p", "TriggeredBy", "--value", unit],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.split()


def stop_no_block(unit: str) -> None:
    subprocess.run([SYSTEMCTL, "stop", "--no-block", unit], check=True)


def notify_status(text: str) -> None:
    """Show `text` as the unit's status line (`systemctl status`: "Status:")
    while it starts. systemd listens to the unit's own Exec processes only
    when it says NotifyAccess=exec (litestream.service does); elsewhere (a
    shell, a test) this does nothing, and so does a systemd that does not
    take the message within a second."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    message = "STATUS=" + " ".join(text.split())
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1)
        sock.connect(address)
        sock.sendall(message.encode())
