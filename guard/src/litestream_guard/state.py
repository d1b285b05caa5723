"""The guard's files under its state directory (/var/lib/litestream-guard):
what this host last knew of its replica, the destinations it left, the
histories it began, the requests waiting for the next start, and what it
publishes for the app (replica.json). Names and formats are the files'."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from .accounts import own
from .settings import Settings


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def read_json(path: Path) -> dict | None:
    """A JSON object from a file; None when missing, unreadable or not one."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class State:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        directory = settings.state_dir
        self.dir = directory
        # This host's last known position of the replica it writes to.
        self.record_path = directory / "replica-position.json"
        # The operator's (or restore-to's) request to let a local file go on
        # from an older state than the replica's newest.
        self.adopt_path = directory / "adopt.json"
        # The destinations this host replicated to before and left, with the
        # positions it left them at (how it knows its own older history).
        self.destinations_path = directory / "destinations.json"
        # New histories begun (a count, the last one, and one waiting for its
        # snapshot in the store).
        self.history_path = directory / "history.json"
        # A request to begin a new history at the next start: from the
        # replica check (the replica can no longer be restored) or from the
        # operator (takeover of a path holding another history).
        self.request_path = directory / "new-history.json"
        # What the app's readiness and metrics read (the database group).
        self.published_path = directory / "replica.json"
        # Held by restore-to for its swap; the restore drill does not run meanwhile.
        self.swap_lock = directory / "swap.lock"
        # Held by start (waits) and check (skips): never both at once.
        self.guard_lock = directory / "guard.lock"
        # The last start and how many quick ones came in a row (back-off).
        self.starts_path = directory / "starts.json"
        # A restore's progress while its files are fetched (staging.py).
        self.restoring_path = directory / "restoring.json"

    @property
    def destination(self) -> str:
        """Where this host replicates: store type, host or endpoint, bucket
        and path (the fingerprint Ansible derives from the replica's settings)."""
        return self.settings.replica_id

    def write_json(self, path: Path, data: dict, mode: int = 0o600) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, sort_keys=True) + "\n")
        tmp.chmod(mode)
        tmp.replace(path)
        own(path, self.settings)

    # -- the position record ------------------------------------------------

    def raw_record(self) -> dict | None:
        """The record whichever destination it names."""
        return read_json(self.record_path)

    def read_record(self) -> dict | None:
        """The record, when it is of this host's destination."""
        record = read_json(self.record_path)
        return record if record and record.get("replica") == self.destination else None

    def running_destination(self) -> str:
        """The destination the running Litestream replicates to: the one its
        start recorded ("" when none)."""
        return (read_json(self.record_path) or {}).get("replica", "")

    def write_record(self, txid: int, how: str, destination: str = "") -> None:
        record = {
            "replica": destination or self.destination,
            "txid": txid,
            "how": how,
            "at": now(),
        }
        self.write_json(self.record_path, record)

    # -- destinations left, histories begun ------------------------------------

    def destinations_data(self) -> dict:
        return read_json(self.destinations_path) or {}

    def destinations(self) -> dict:
        return self.destinations_data().get("left", {})

    def history(self) -> dict:
        return read_json(self.history_path) or {"restarts": 0, "pending": None}

    def write_history(self, history: dict) -> None:
        self.write_json(self.history_path, history)

    # -- requests for the next start -----------------------------------------

    def history_request(self) -> dict | None:
        """A request to begin a new history at this destination; one made
        for another destination is removed."""
        request = read_json(self.request_path)
        if request and request.get("replica") == self.destination:
            return request
        if request:
            self.request_path.unlink(missing_ok=True)  # made for another destination
        return None

    def request_history(self, destination: str, why: str) -> None:
        self.write_json(self.request_path, {"replica": destination, "why": why})

    def adopt_request(self, replica: int) -> dict | None:
        """An adopt request for exactly the replica's newest TXID. It stays
        until the replica is past that TXID (a Litestream that dies between
        the restore and its first sync is let start again); once past, or
        made for another destination, it is removed."""
        request = read_json(self.adopt_path)
        if not request:
            return None
        if request.get("replica") == self.destination and request.get("txid") == replica:
            return request
        if request.get("replica") != self.destination or replica > int(request.get("txid", 0)):
            self.adopt_path.unlink(missing_ok=True)
        return None

    def write_adopt(self, request: dict) -> None:
        self.adopt_path.write_text(json.dumps(request) + "\n")
        own(self.adopt_path, self.settings)

    # -- what the app reads -----------------------------------------------------

    def published(self) -> dict | None:
        return read_json(self.published_path)

    def publish(self, result: dict) -> None:
        self.write_json(self.published_path, result, 0o640)

    def publish_pending(self, reason: str) -> None:
        published = self.published() or {}
        published.update(
            destination=self.destination,
            new_history_pending=True,
            reason=reason,
            history_restarts=self.history().get("restarts", 0),
        )
        self.publish(published)
