"""metrics: every database of the host in Prometheus's text format, and the
one-request HTTP answer systemd's socket hands over."""

from __future__ import annotations

import json
import socket
import threading

import pytest

import litestream_control
from conftest import answer_sync
from litestream_guard import cli, metrics
from litestream_guard import settings as settings_module


def two_databases(world, tmp_path, monkeypatch):
    """The host's first database (the world's) and one named `notes`, each
    with its own state directory and drill result."""
    first = world.write_settings()
    monkeypatch.setattr(settings_module, "SETTINGS", first)
    notes_state = tmp_path / "notes-state"
    notes_state.mkdir()
    notes = dict(
        world.settings,
        db=str(tmp_path / "data" / "notes.db"),
        socket=str(tmp_path / "notes.sock"),
        state_dir=str(notes_state),
        drill={"dir": str(tmp_path / "drill"), "result": str(tmp_path / "notes-drill.json")},
    )
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "guard.json").write_text(json.dumps(notes))
    # A deploy's staged settings beside the first: not a database.
    (tmp_path / "staged").mkdir()
    (tmp_path / "staged" / "guard.json").write_text(json.dumps(notes))
    return notes_state, tmp_path / "notes-drill.json"


def lines(text: str) -> set[str]:
    return {line for line in text.splitlines() if not line.startswith("#")}


def test_every_database_is_one_labelled_series_each(world, tmp_path, monkeypatch, capsys):
    notes_state, drill = two_databases(world, tmp_path, monkeypatch)
    answer_sync(monkeypatch, {"txid": 42, "replicated_txid": 40})
    (world.state / "replica.json").write_text(
        json.dumps({"restorable": True, "checked_unix": 1000, "history_restarts": 1})
    )
    (notes_state / "replica.json").write_text(
        json.dumps({"restorable": False, "checked_unix": 2000, "new_history_pending": True})
    )
    drill.write_text(json.dumps({"ok": True, "finished_unix": 3000, "duration_seconds": 1.5}))

    assert cli.main(["litestream-guard", "metrics"]) == 0
    out = capsys.readouterr().out
    assert lines(out) >= {
        'litestream_guard_settings_readable{database=""} 1',
        'litestream_guard_settings_readable{database="notes"} 1',
        'litestream_guard_replication_up{database=""} 1',
        'litestream_guard_local_txid{database="notes"} 42',
        'litestream_guard_replicated_txid{database="notes"} 40',
        'litestream_guard_replica_restorable{database=""} 1',
        'litestream_guard_replica_restorable{database="notes"} 0',
        'litestream_guard_replica_new_history_pending{database="notes"} 1',
        'litestream_guard_replica_history_restarts_total{database=""} 1',
        'litestream_guard_replica_check_timestamp_seconds{database="notes"} 2000',
        'litestream_guard_restore_drill_success{database="notes"} 1',
        'litestream_guard_restore_drill_last_run_timestamp_seconds{database="notes"} 3000',
        'litestream_guard_restore_drill_duration_seconds{database="notes"} 1.5',
    }
    assert "staged" not in out
    # One HELP and TYPE per metric, before its samples.
    assert out.count("# TYPE litestream_guard_replication_up gauge") == 1
    assert "# TYPE litestream_guard_replica_history_restarts_total counter" in out


def test_a_silent_litestream_and_a_bad_drill_result_are_never_good(world, tmp_path, monkeypatch):
    _, drill = two_databases(world, tmp_path, monkeypatch)

    def refused(*args, **kwargs):
        raise ConnectionRefusedError("no socket")

    monkeypatch.setattr(litestream_control.Control, "request", refused)
    drill.write_text("{not json")
    out = metrics.exposition(metrics.collect(settings_module.every_database()))
    assert 'litestream_guard_replication_up{database="notes"} 0' in out
    assert "litestream_guard_local_txid" not in out, "no position is invented"
    assert 'litestream_guard_restore_drill_success{database="notes"} 0' in out
    # No check published yet: nothing said about the replica.
    assert "litestream_guard_replica_restorable" not in out


def test_no_drill_yet_is_a_last_run_of_zero(tmp_path):
    samples = dict(metrics.drill_samples(tmp_path / "absent.json"))
    assert samples == {"litestream_guard_restore_drill_last_run_timestamp_seconds": 0}
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"ok": "yes", "finished_unix": 1}))
    assert dict(metrics.drill_samples(wrong)) == {"litestream_guard_restore_drill_success": 0}


def test_unreadable_settings_say_so(world, tmp_path, monkeypatch):
    two_databases(world, tmp_path, monkeypatch)
    (tmp_path / "notes" / "guard.json").write_text("{")
    out = metrics.exposition(metrics.collect(settings_module.every_database()))
    assert 'litestream_guard_settings_readable{database="notes"} 0' in out


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.0 200 OK"),
        (b"GET /metrics?x=1 HTTP/1.1\r\n\r\n", b"HTTP/1.0 200 OK"),
        (b"GET /debug/pprof/ HTTP/1.1\r\n\r\n", b"HTTP/1.0 404 Not Found"),
        (b"POST /metrics HTTP/1.1\r\n\r\n", b"HTTP/1.0 405 Method Not Allowed"),
        (b"\x16\x03\x01 hello", b"HTTP/1.0 400 Bad Request"),
        (b"", b"HTTP/1.0 400 Bad Request"),
    ],
)
def test_one_request_one_answer(request_head, status):
    asked = []

    def body() -> str:
        asked.append(True)
        return "x 1\n"

    answer = metrics.answer(request_head, body)
    assert answer.startswith(status + b"\r\n")
    assert (answer.endswith(b"\r\n\r\nx 1\n")) == (status.endswith(b"200 OK"))
    assert bool(asked) == status.endswith(b"200 OK"), "the databases are read for a scrape only"


def test_served_on_the_socket_systemd_hands_over():
    server, client = socket.socketpair()
    try:
        client.sendall(b"GET /metrics HTTP/1.1\r\nHost: app1\r\n")
        done = threading.Thread(target=metrics.serve_one, args=(lambda: "up 1\n", server.fileno()))
        done.start()
        client.sendall(b"\r\n")  # the head arrives in two pieces
        received = b""
        while chunk := client.recv(4096):
            received += chunk
        done.join(5)
    finally:
        server.close()
        client.close()
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK")
    assert b"Content-Length: 5" in head
    assert body == b"up 1\n"


def test_a_silent_client_is_let_go():
    server, client = socket.socketpair()
    try:
        request = metrics.read_request(server, timeout=0.2)
    finally:
        server.close()
        client.close()
    assert request == b""


def test_it_takes_no_database_name(world, monkeypatch, capsys):
    monkeypatch.setattr(settings_module, "SETTINGS", world.write_settings())
    assert cli.main(["litestream-guard", "--database", "notes", "metrics"]) == 2
    assert "every database" in capsys.readouterr().err


def test_databases_lists_every_database_of_the_host(world, tmp_path, monkeypatch, capsys):
    two_databases(world, tmp_path, monkeypatch)
    (tmp_path / "wiki").mkdir()
    (tmp_path / "wiki" / "guard.json").write_text("{")
    assert cli.main(["litestream-guard", "databases"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(db["name"], db["unit"], db["app_unit"]) for db in listed] == [
        ("", "litestream.service", "counter.service"),
        ("notes", "litestream.service", "counter.service"),
        ("wiki", None, None),
    ]
    assert "cannot be used" in listed[2]["error"]
