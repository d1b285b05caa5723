"""Restores through a stage (staging.py): Litestream's plan, the plan's files
fetched by the guard (OpenSSH's sftp stood in for by a script serving a
directory; S3 by a local HTTP server answering ranged GETs), Litestream's
restore from the stage, and every way out of it."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from conftest import executable, refused
from litestream_guard import pitr, staging, status, systemd
from litestream_guard.lifecycle import start
from litestream_guard.pitr import Target
from litestream_guard.staging import Plan, progress, wanted_in
from litestream_guard.stores import FileGone, S3Store, StoreUnreachable, Wanted, balanced

# OpenSSH's sftp in batch mode, serving $here/store: `get "REMOTE" "LOCAL"`.
SFTP = r"""#!/bin/sh
here=$(dirname "$0")
echo "sftp $*" >> "$here/events"
if [ -e "$here/store_down" ]; then
    echo "ssh: connect to host store port 22: Connection refused"; exit 255
fi
while [ $# -gt 0 ]; do case $1 in -b) batch=$2;; esac; shift; done
while read -r cmd remote local; do
    remote=${remote#\"}; remote=${remote%\"}; local=${local#\"}; local=${local%\"}
    case $cmd in get)
        if [ ! -e "$here/store/$remote" ]; then echo "File \"$remote\" not found."; exit 1; fi
        cp "$here/store/$remote" "$local";;
    esac
done < "$batch"
"""


def LTX_HEADER(page_size: int, pages: int) -> bytes:
    return (
        b"LTX1" + (0).to_bytes(4, "big") + page_size.to_bytes(4, "big") + pages.to_bytes(4, "big")
    )


SNAPSHOT = "0000000000000001-0000000000000005.ltx"
INCREMENT = "0000000000000006-0000000000000007.ltx"


@pytest.fixture
def remote(world, monkeypatch):
    """The world's replica on an SFTP store holding a snapshot and one
    increment, and Litestream's plan of them."""
    executable(world.bin / "sftp", SFTP)
    monkeypatch.setenv("PATH", f"{world.bin}:{os.environ['PATH']}")
    world.settings["replica"] = {
        "type": "sftp",
        "host": "store:22",
        "user": "replica-host",
        "path": "upload/host",
        "key-path": "/etc/litestream/sftp_ed25519",
        "host-key": "ssh-ed25519 AAAAC3Nza",
    }
    store = world.bin / "store" / "upload" / "host" / "ltx"
    # The last file's header says the database is 3 pages of 4096 bytes.
    increment = LTX_HEADER(4096, 3).ljust(200, b"i")
    contents = {(9, SNAPSHOT): b"s" * 3000, (0, INCREMENT): increment}
    for (level, name), data in contents.items():
        (store / str(level)).mkdir(parents=True, exist_ok=True)
        (store / str(level) / name).write_bytes(data)
    world.plan = {
        "max_txid": f"{7:016x}",
        "files": [
            {"level": level, "name": name, "size": len(data), "min_txid": "", "max_txid": ""}
            for (level, name), data in contents.items()
        ],
    }
    (world.bin / "plan.json").write_text(json.dumps(world.plan))
    world.replica(5, 7)
    world.flag("restorable")
    world.store = store
    return world


def restores(world) -> list[str]:
    """Litestream's restores that wrote a database (not the plans)."""
    return [line for line in world.event_lines() if " restore " in line and "-dry-run" not in line]


def test_a_missing_database_is_restored_from_the_fetched_plan(remote, capsys):
    start(remote.host())
    assert remote.db.read_text() == "restored\n"
    (restore,) = restores(remote)
    stage = remote.db.with_name(".counter.db.stage")
    assert restore.endswith(
        f"-txid 0000000000000007 -integrity-check quick -o {remote.db} file://{stage}"
    )
    # Litestream found the plan's files, whole and under their own names.
    assert (remote.bin / "staged").read_text().split() == [
        f"./ltx/0/{INCREMENT}",
        f"./ltx/9/{SNAPSHOT}",
    ]
    assert not stage.exists(), "the stage is removed"
    assert remote.record()["how"] == "restored"
    out = capsys.readouterr().out
    assert "fetched the plan's 2 files" in out and "Restored" in out


def test_stages_a_crash_left_are_removed_before_a_restore(remote):
    for name in (".counter.db.stage", ".counter.db.restore-20261206T000000Z.stage"):
        (remote.db.parent / name / "ltx").mkdir(parents=True)
    start(remote.host())
    assert sorted(p.name for p in remote.db.parent.iterdir()) == ["counter.db"]


def test_a_store_that_cannot_be_fetched_from_falls_back_to_litestreams_own_restore(remote, capsys):
    remote.flag("store_down")
    start(remote.host())
    assert remote.db.read_text() == "restored\n"
    (restore,) = restores(remote)
    assert "file://" not in restore and restore.endswith(str(remote.db))
    assert "Litestream restores straight from the store" in capsys.readouterr().err
    assert not remote.db.with_name(".counter.db.stage").exists()


def test_a_file_fetched_short_is_never_restored_from(remote, capsys):
    (remote.store / "9" / SNAPSHOT).write_bytes(b"s" * 10)
    start(remote.host())
    (restore,) = restores(remote)
    assert "file://" not in restore, "Litestream's own restore, not the short file"
    assert "10 bytes fetched, 3000 planned" in capsys.readouterr().err


def test_a_file_gone_from_the_store_means_planning_again(remote, capsys):
    (remote.store / "0" / INCREMENT).unlink()
    start(remote.host())
    plans = [line for line in remote.event_lines() if "-dry-run" in line]
    assert len(plans) == 3, "planned again, three times at most"
    (restore,) = restores(remote)
    assert "file://" not in restore
    captured = capsys.readouterr()
    assert "planning again" in captured.out and "kept changing" in captured.err


def test_a_damaged_staged_file_refuses_the_restore_and_leaves_nothing(remote):
    remote.flag("stage_damaged")
    error = refused(remote)
    assert "checksum mismatch" in str(error) and "not starting on an empty database" in str(error)
    assert len(restores(remote)) == 1, "no second try from the store: the replica is damaged"
    leftovers = sorted(p.name for p in remote.db.parent.iterdir() if "counter.db" in p.name)
    assert leftovers == [], leftovers


def test_a_stage_the_disk_cannot_hold_is_left_to_litestreams_own_restore(
    remote, monkeypatch, capsys
):
    monkeypatch.setattr(staging.shutil, "disk_usage", lambda path: type("U", (), {"free": 4000})())
    start(remote.host())
    assert remote.db.read_text() == "restored\n"
    (restore,) = restores(remote)
    assert "file://" not in restore
    assert not any(line.startswith("sftp") for line in remote.event_lines()), "nothing fetched"
    assert "Not enough space" in capsys.readouterr().err


def test_a_stage_path_a_url_cannot_name_is_left_to_litestreams_own_restore(remote, capsys):
    spaced = remote.tmp / "data dir"
    spaced.mkdir()
    remote.db = spaced / "counter.db"
    remote.settings["db"] = str(remote.db)
    (remote.bin / "db_path").write_text(str(remote.db))
    start(remote.host())
    (restore,) = restores(remote)
    assert "file://" not in restore
    assert "does not fit in a file:// URL" in capsys.readouterr().err


def test_no_plan_is_left_to_litestream_which_says_why(remote):
    (remote.bin / "plan.json").unlink()
    remote.flag("restorable", False)
    error = refused(remote)
    assert "no restorable backup" in str(error)
    assert not any(line.startswith("sftp") for line in remote.event_lines())


def test_a_plan_with_a_strange_file_name_is_not_fetched():
    for name in ("../x", "0000000000000001-0000000000000002.ltx\nget /etc/shadow x"):
        text = json.dumps({"max_txid": "07", "files": [{"level": 0, "name": name, "size": 1}]})
        with pytest.raises(ValueError, match="strange name"):
            Plan.of(text)


def test_files_are_shared_out_by_size(tmp_path):
    sizes = [100, 90, 10, 10, 5]
    wanted = [Wanted(0, f"f{i}", size, tmp_path / f"f{i}") for i, size in enumerate(sizes)]
    groups = balanced(wanted, 2)
    assert sorted(sum(w.size for w in g) for g in groups) == [105, 110]
    assert len(balanced(wanted[:1], 4)) == 1, "no empty session"


@pytest.fixture
def notified(monkeypatch):
    """systemd's notify socket (NOTIFY_SOCKET) stood in for: a function that
    returns the messages sent to it so far."""
    with tempfile.TemporaryDirectory(dir="/tmp") as short:  # a socket path is short
        path = os.path.join(short, "notify")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        listener.bind(path)
        listener.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", path)

        def messages() -> list[str]:
            got = []
            with contextlib.suppress(BlockingIOError):
                while True:
                    got.append(listener.recv(4096).decode())
            return got

        try:
            yield messages
        finally:
            listener.close()


def test_progress_says_how_much_of_the_plan_came(tmp_path, capsys, notified):
    plan = Plan("07", ((9, SNAPSHOT, 8192), (0, INCREMENT, 4096)))
    wanted = wanted_in(plan, tmp_path)
    for w in wanted:
        w.dest.parent.mkdir(parents=True, exist_ok=True)
    wanted[0].dest.write_bytes(os.urandom(8192))
    record = tmp_path / "restoring.json"
    what = "of the plan's 2 files"
    with progress("fetched", plan.size, lambda: staging.fetched_bytes(wanted), what, record, 0.05):
        threading.Event().wait(0.2)
        now = json.loads(record.read_text())
        assert (now["phase"], now["done"], now["total"]) == ("fetched", 8192, 8192 + 4096)
        assert now["pid"] == os.getpid()
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("restoring: fetched 0 / 0 MiB of the plan's 2 files"), line
    said = notified()
    assert said[0].startswith("STATUS=restoring: fetched 0 / 0 MiB of the plan's 2 files"), said
    assert len(said) >= 2, "again every `every` seconds"
    assert staging.fetched_bytes(wanted) == 8192
    wanted[1].dest.with_suffix("").write_bytes(os.urandom(4096))  # one renamed whole
    assert staging.fetched_bytes(wanted) == 8192 + 4096


def test_the_database_applied_is_measured_against_the_plans_last_header(tmp_path):
    plan = Plan("07", ((9, SNAPSHOT, 3000), (0, INCREMENT, 200)))
    (tmp_path / "ltx" / "0").mkdir(parents=True)
    assert staging.database_size(plan, tmp_path) == 0, "no file: no size"
    (tmp_path / "ltx" / "0" / INCREMENT).write_bytes(b"not an LTX file at all")
    assert staging.database_size(plan, tmp_path) == 0, "not LTX: no size"
    (tmp_path / "ltx" / "0" / INCREMENT).write_bytes(LTX_HEADER(4096, 262144).ljust(100, b"\0"))
    assert staging.database_size(plan, tmp_path) == 1 << 30
    out = tmp_path / "copy.db"
    assert staging.output_bytes(out) == 0
    out.with_name("copy.db.tmp").write_bytes(b"x" * 4096)
    assert staging.output_bytes(out) == 4096, "written so far"
    out.with_name("copy.db.tmp").rename(out)
    assert staging.output_bytes(out) == 4096, "renamed at the end"


def test_no_notify_socket_no_status(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    systemd.notify_status("restoring")  # outside systemd: nothing, no error
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent/notify")
    systemd.notify_status("restoring")  # systemd gone: nothing, no error


class _S3(BaseHTTPRequestHandler):
    objects: ClassVar[dict[str, bytes]] = {}
    ranges: ClassVar[list[str]] = []
    signed: ClassVar[list[str]] = []
    # "": answer the range; "whole": ignore it (200, the whole object);
    # "short": one byte less; "cut": promise the range, close halfway.
    mode: ClassVar[str] = ""

    def do_GET(self):
        data = self.objects.get(self.path)
        if data is None:
            self.send_response(404)
            self.end_headers()
            return
        first, last = (int(x) for x in self.headers["Range"].removeprefix("bytes=").split("-"))
        self.ranges.append(self.headers["Range"])
        self.signed.append(self.headers["Authorization"].split("SignedHeaders=")[1].split(",")[0])
        part = data if self.mode == "whole" else data[first : last + 1]
        length = len(part)
        if self.mode == "short":
            part = part[:-1]
            length = len(part)
        if self.mode == "cut":  # the whole range promised, half of it sent
            part = part[: len(part) // 2]
        self.send_response(200 if self.mode == "whole" else 206)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(part)
        if self.mode == "cut":
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def s3():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _S3)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _S3.objects, _S3.ranges, _S3.signed, _S3.mode = {}, [], [], ""
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_s3_files_come_in_ranges_at_once_and_whole(s3, tmp_path, monkeypatch):
    monkeypatch.setattr(S3Store, "CHUNK", 1000)
    snapshot, increment = os.urandom(4500), os.urandom(700)
    _S3.objects = {
        f"/bucket/host/0009/{SNAPSHOT}": snapshot,
        f"/bucket/host/0000/{INCREMENT}": increment,
    }
    replica = {"type": "s3", "bucket": "bucket", "path": "host", "endpoint": s3}
    store = S3Store(replica, {"LITESTREAM_ACCESS_KEY_ID": "k"}, 5)
    wanted = [
        Wanted(9, SNAPSHOT, len(snapshot), tmp_path / "a.part"),
        Wanted(0, INCREMENT, len(increment), tmp_path / "b.part"),
    ]
    store.fetch(wanted, deadline=float("inf"), workers=4)
    assert (tmp_path / "a.part").read_bytes() == snapshot
    assert (tmp_path / "b.part").read_bytes() == increment
    assert len(_S3.ranges) == 6 and "bytes=4000-4499" in _S3.ranges
    del _S3.objects[f"/bucket/host/0000/{INCREMENT}"]
    with pytest.raises(FileGone):
        store.fetch(wanted, deadline=float("inf"))
    with pytest.raises(StoreUnreachable, match="time left"):
        store.fetch(wanted[:1], deadline=0)
    assert all("range" in names.split(";") for names in _S3.signed), "the range is signed"


@pytest.mark.parametrize("mode", ["whole", "short", "cut"])
def test_an_s3_answer_that_is_not_the_range_asked_is_a_failed_fetch(
    s3, tmp_path, monkeypatch, mode
):
    monkeypatch.setattr(S3Store, "CHUNK", 1000)
    _S3.objects = {f"/bucket/host/0009/{SNAPSHOT}": os.urandom(3000)}
    _S3.mode = mode
    store = S3Store({"type": "s3", "bucket": "bucket", "path": "host", "endpoint": s3}, {}, 5)
    with pytest.raises(StoreUnreachable):
        store.fetch([Wanted(9, SNAPSHOT, 3000, tmp_path / "a.part")], deadline=float("inf"))


def test_the_space_needed_is_said():
    plan = Plan("07", ((9, SNAPSHOT, 2 << 20),))
    with_free = lambda free: type("U", (), {"free": free})()  # noqa: E731
    import unittest.mock

    with unittest.mock.patch.object(staging.shutil, "disk_usage", lambda p: with_free(3 << 20)):
        assert "need at least 4 MiB, 3 MiB are free" in staging.space_short(plan, Path("/"))
    with unittest.mock.patch.object(staging.shutil, "disk_usage", lambda p: with_free(4 << 20)):
        assert staging.space_short(plan, Path("/")) == ""


def test_a_point_in_time_copy_plans_and_restores_that_point(remote, monkeypatch, tmp_path):
    """The target goes to Litestream's plan; the stage is restored up to the
    plan's TXID, which the copy reports."""
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr("os.chown", lambda *a: None)
    (remote.bin / "restore_txid").write_text(f"{7:016x}")
    out = tmp_path / "copy.db"
    result = pitr.restore_copy(remote.host(), Target(txid="7"), out, 30)
    assert result["txid"] == 7 and out.read_text() == "restored\n"
    lines = remote.event_lines()
    (plan,) = [line for line in lines if "-dry-run" in line]
    assert "-txid 0000000000000007" in plan
    (restore,) = restores(remote)
    assert f"-txid 0000000000000007 -integrity-check full -o {out} file://" in restore
    result = pitr.restore_copy(
        remote.host(), Target(timestamp="2026-12-06T10:00:00Z"), tmp_path / "t.db", 30
    )
    plan = [line for line in remote.event_lines() if "-dry-run" in line][-1]
    assert "-timestamp 2026-12-06T10:00:00Z" in plan, "a time goes to the plan, not to the stage"


def test_a_relative_output_is_staged_beside_it(remote, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    out = remote.host().litestream.restore(output=Path("copy.db"), timeout=30)
    assert out.returncode == 0 and (tmp_path / "copy.db").read_text() == "restored\n"
    (restore,) = restores(remote)
    assert f"file://{tmp_path}/.copy.db.stage" in restore


def _recording_progress(monkeypatch) -> list:
    """progress() stood in for by one that writes the record as the real
    one does and notes each step: (phase, total, record, a record there
    already)."""
    seen = []

    def progress(phase, total, done, what, record=None, then=""):
        seen.append((phase, total, record, record is not None and record.exists()))
        if record is not None:
            record.write_text(json.dumps({"pid": os.getpid(), "phase": phase, "total": total}))
        return contextlib.nullcontext()

    monkeypatch.setattr(staging, "progress", progress)
    return seen


def test_the_start_up_restore_alone_keeps_its_progress_for_status(remote, monkeypatch):
    seen = _recording_progress(monkeypatch)
    start(remote.host())
    record = remote.state / "restoring.json"
    assert not record.exists(), "removed once the restore is over"
    remote.host().litestream.restore(output=remote.tmp / "copy.db", timeout=30)
    assert seen == [
        ("fetched", 3200, record, False),
        ("applied", 3 * 4096, record, True),  # no gap between the two steps
        ("fetched", 3200, None, False),
        ("applied", 3 * 4096, None, False),
    ]


def test_a_fallback_to_litestreams_own_restore_shows_no_stale_figures(
    remote, monkeypatch, notified
):
    seen = _recording_progress(monkeypatch)
    remote.flag("store_down")  # the fetch fails once its record is written
    start(remote.host())
    assert remote.db.read_text() == "restored\n"
    assert [phase for phase, *_ in seen] == ["fetched"]
    assert not (remote.state / "restoring.json").exists()
    said = notified()
    assert "STATUS=restoring: Litestream restores straight from the store" in said, said
    assert said[-1].startswith("STATUS=Restored from the replica at this start"), said


def test_a_failed_restore_leaves_no_progress_record(remote, monkeypatch):
    seen = _recording_progress(monkeypatch)
    remote.flag("stage_damaged")
    refused(remote)
    assert [phase for phase, *_ in seen] == ["fetched", "applied"]
    assert not (remote.state / "restoring.json").exists()


def test_a_start_removes_the_record_a_killed_restore_left(world):
    record = world.state / "restoring.json"
    record.write_text(json.dumps({"pid": os.getpid(), "done": 1, "total": 2}))
    world.db.write_text("live\n")
    world.local(5)
    world.replica(5)
    world.here(5)
    start(world.host())
    assert not record.exists()


def test_a_progress_record_left_by_a_killed_guard_says_nothing(remote):
    record = remote.state / "restoring.json"
    record.write_text(json.dumps({"pid": os.getpid(), "done": 1, "total": 2}))
    assert status.restoring(record)["done"] == 1
    record.write_text(json.dumps({"pid": 2**22 + 12345, "done": 1, "total": 2}))
    assert status.restoring(record) is None
