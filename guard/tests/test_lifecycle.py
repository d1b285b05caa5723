"""lifecycle: start (restore a missing database, refuse a rollback, back
off a loop), stop, started, app-stopped, and the operator's ways out of a
refused start (restore-from-replica, adopt-local)."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import DESTINATION, OTHER, answer_sync, asides, refused
from litestream_control import Control
from litestream_guard import lifecycle
from litestream_guard.errors import EXIT_REFUSED, EXIT_RETRY, Refused
from litestream_guard.lifecycle import start
from litestream_guard.litestream import Litestream


def test_missing_database_and_empty_replica_start_new(world, capsys):
    start(world.host())
    assert "holds nothing yet" in capsys.readouterr().out
    assert world.record()["txid"] == 0


def test_missing_database_is_restored(world, capsys):
    world.replica(1, 7)
    world.flag("restorable")
    (world.db.parent / ".counter.db-litestream").mkdir()
    world.db.with_name("counter.db-wal").write_text("stale")
    start(world.host())
    assert world.db.read_text() == "restored\n"
    assert not world.db.with_name("counter.db-wal").exists(), "a stale WAL is removed"
    assert world.record() | {"at": None} == {
        "replica": "sftp://store:22/upload/host",
        "txid": 7,
        "how": "restored",
        "at": None,
    }
    assert "integrity check: quick" in capsys.readouterr().out


def test_damaged_replica_is_not_taken_for_an_empty_one(world):
    world.replica(2, 3)  # files, but restore finds no backup
    error = refused(world)
    assert error.code == EXIT_RETRY
    assert "no restorable backup" in str(error)
    assert not world.db.exists()


def test_unreachable_store_with_a_missing_database_fails_closed(world):
    world.flag("unreachable")
    error = refused(world)
    assert "cannot be read" in str(error) and "not starting on an empty database" in str(error)


@pytest.mark.parametrize(("local", "replica"), [(5, 5), (9, 5)], ids=["equal", "ahead"])
def test_database_not_behind_its_replica_starts(world, local, replica):
    world.db.write_text("db")
    world.local(local)
    world.replica(1, replica)
    world.here(replica)
    start(world.host())
    assert world.record()["txid"] == replica


def test_database_behind_its_replica_is_refused(world):
    world.db.write_text("db")
    world.local(3)
    world.replica(1, 5)
    world.here(5)
    error = refused(world)
    assert error.code == EXIT_REFUSED
    assert "is at TXID 3 but its replica is at TXID 5" in str(error)
    assert "restore-from-replica" in str(error) and "adopt-local" in str(error)


def test_another_databases_refusal_names_its_own_guard_command(world):
    """Run as shown, the way out acts on the refused database, not the first."""
    world.settings["unit"] = "litestream@notes.service"
    world.db.write_text("db")
    world.local(3)
    world.replica(1, 5)
    world.here(5)
    error = str(refused(world))
    assert "`litestream-guard --database notes restore-from-replica`" in error
    assert "`litestream-guard --database notes adopt-local`" in error


def test_existing_database_and_empty_replica_path_start(world):
    world.db.write_text("db")
    world.local(4)
    start(world.host())


def test_existing_database_without_local_state_is_refused_unless_just_restored(world):
    world.db.write_text("db")
    world.replica(1, 5)
    assert refused(world).code == EXIT_REFUSED
    world.host().state.write_record(5, "restored")
    start(world.host())


def test_unreachable_store_uses_this_hosts_record(world):
    world.db.write_text("db")
    world.local(6)
    world.flag("unreachable")
    assert "last known replica position: unknown" in str(refused(world))
    world.host().state.write_record(6, "stopped")
    start(world.host())
    world.host().state.write_record(8, "stopped")
    assert "TXID 6" in str(refused(world)), "a file behind the last known position"


def test_unreachable_store_without_trusting_the_record_waits(world):
    world.db.write_text("db")
    world.local(6)
    world.flag("unreachable")
    world.host().state.write_record(6, "stopped")
    world.settings["trust_record_when_unreachable"] = False
    assert "not trusted" in str(refused(world))


def test_a_record_of_another_replica_is_ignored(world):
    world.host().state.write_record(1, "stopped")
    world.settings["replica_id"] = "s3://bucket/other"
    assert world.record() is None


def test_adopting_is_allowed_for_the_replica_position_it_names_until_passed(world):
    world.db.write_text("db")
    world.local(3)
    world.replica(1, 5)
    adopt = world.state / "adopt.json"
    adopt.write_text(json.dumps({"replica": "sftp://store:22/upload/host", "txid": 4}))
    assert refused(world).code == EXIT_REFUSED, "an adopt for another position"
    adopt.write_text(
        json.dumps({"replica": "sftp://store:22/upload/host", "txid": 5, "saved_as": "/x.db"})
    )
    start(world.host())
    start(world.host())  # Litestream died before its first sync: allowed again
    assert adopt.exists(), "kept until the replica is past TXID 5"
    world.replica(1, 5, 6)
    world.here(6)
    world.local(6)
    start(world.host())
    assert not adopt.exists(), "the replica went past it: removed"
    world.local(3)
    assert refused(world).code == EXIT_REFUSED


def test_a_crash_is_restarted_at_once_and_a_loop_backs_off(world, monkeypatch):
    clock = {"now": 1_000_000.0}
    waits: list[float] = []
    monkeypatch.setattr(lifecycle.time, "time", lambda: clock["now"])
    monkeypatch.setattr(lifecycle.time, "sleep", lambda s: waits.append(s))
    world.settings["restart_max"] = 1
    host = world.host()
    lifecycle.back_off(host)  # the first start
    for _ in range(5):  # starts that come one after the other
        clock["now"] += 2
        lifecycle.back_off(host)
    assert waits == [0.0, 0.2, 0.4, 0.8, 1.0, 1.0]
    clock["now"] += lifecycle.QUICK_RESTART + 1  # after a good run: at once again
    lifecycle.back_off(host)
    assert waits[-1] == 0.0


def test_an_unreadable_start_record_means_no_wait(world, monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(lifecycle.time, "sleep", lambda s: waits.append(s))
    (world.state / "starts.json").write_text("{not json")
    lifecycle.back_off(world.host())
    assert waits == [0.0]


def test_a_stop_records_the_destination_litestream_ran_on(world, monkeypatch):
    """A deploy that switches destination has written the new settings when
    systemd stops the running Litestream: its last position belongs to the
    old destination, which the next start then notes as left."""
    world.db.write_text("db")
    world.here(40)
    monkeypatch.setenv("MAINPID", "1")
    answer_sync(monkeypatch, {"txid": 45, "replicated_txid": 45})
    world.settings["replica_id"] = OTHER
    lifecycle.stop(world.host())
    record = json.loads((world.state / "replica-position.json").read_text())
    assert record["replica"] == "sftp://store:22/upload/host" and record["txid"] == 45
    world.local(45)
    start(world.host())
    assert world.host().state.destinations()["sftp://store:22/upload/host"]["txid"] == 45


# -- stop, started, app-stopped ------------------------------------------------


def test_a_stop_outside_systemd_does_nothing(world, monkeypatch):
    monkeypatch.delenv("MAINPID", raising=False)
    answer_sync(monkeypatch, {"txid": 5, "replicated_txid": 5})
    lifecycle.stop(world.host())
    assert world.record() is None


def test_a_stop_waits_for_the_replica_to_hold_the_last_write(world, monkeypatch, capsys):
    world.here(40)
    monkeypatch.setenv("MAINPID", "1")
    answer_sync(monkeypatch, {"txid": 45, "replicated_txid": 45})
    lifecycle.stop(world.host())
    assert "The replica holds TXID 45 (local 45): stopping" in capsys.readouterr().out
    assert world.record()["txid"] == 45 and world.record()["how"] == "stopped"


def test_a_stop_gives_up_when_litestream_does_not_answer(world, monkeypatch, capsys):
    world.here(40)
    monkeypatch.setenv("MAINPID", "1")
    world.settings["stop_sync_timeout"] = 1

    def no_answer(*args, **kwargs):
        raise ConnectionRefusedError("no socket")

    monkeypatch.setattr(Control, "request", no_answer)
    lifecycle.stop(world.host())
    assert "did not confirm the last writes within 1 s" in capsys.readouterr().err
    assert world.record()["txid"] == 40, "the record is not changed"


def jobs(world, *lines: str) -> None:
    (world.bin / "jobs").write_text("".join(f"{line}\n" for line in lines))


def inactive(world, *units: str) -> None:
    (world.bin / "inactive").write_text("".join(f"{unit}\n" for unit in units))


def test_started_starts_the_app_that_is_not_running(world, monkeypatch, capsys):
    world.systemctl(monkeypatch)
    inactive(world, "counter.service")
    lifecycle.started(world.host())
    assert "systemctl start --no-block counter.service" in world.event_lines()
    assert "Replicating: starting counter.service" in capsys.readouterr().out


def test_started_leaves_a_running_or_waiting_app_alone(world, monkeypatch):
    world.systemctl(monkeypatch)
    lifecycle.started(world.host())  # active
    jobs(world, "7 counter.service start waiting")
    inactive(world, "counter.service")
    lifecycle.started(world.host())  # queued behind Litestream's start
    assert not any(line.startswith("systemctl start") for line in world.event_lines())


def test_started_without_an_app_unit_starts_nothing(world, monkeypatch):
    world.systemctl(monkeypatch)
    world.settings["app_unit"] = ""
    lifecycle.started(world.host())
    assert world.events() == []


def test_started_checks_a_pending_history_at_once(world, monkeypatch):
    world.systemctl(monkeypatch)
    world.settings["replica_check"] = {"unit": "litestream-replica-check.service"}
    (world.state / "history.json").write_text(json.dumps({"restarts": 1, "pending": {"x": 1}}))
    lifecycle.started(world.host())
    assert world.event_lines()[0] == ("systemctl start --no-block litestream-replica-check.service")


def test_a_stopped_app_stops_litestream_after_it(world, monkeypatch, capsys):
    world.systemctl(monkeypatch)
    jobs(world, "9 counter.service stop running")
    lifecycle.app_stopped(world.host(), "counter.service")
    assert "systemctl stop --no-block litestream.service" in world.event_lines()
    assert "stopping litestream.service after it" in capsys.readouterr().out


def test_a_stopped_app_closes_its_listener_before_litestream(world, monkeypatch, capsys):
    world.systemctl(monkeypatch)
    jobs(world, "9 counter.service stop running")
    (world.bin / "triggered_by").write_text("counter.socket\n")
    lifecycle.app_stopped(world.host(), "counter.service")
    stops = [line for line in world.event_lines() if line.startswith("systemctl stop")]
    assert stops == [
        "systemctl stop --no-block counter.socket",
        "systemctl stop --no-block litestream.service",
    ]
    assert "stopping its listener counter.socket" in capsys.readouterr().out


def test_a_restarting_app_keeps_its_listener(world, monkeypatch):
    world.systemctl(monkeypatch)
    jobs(world, "9 counter.service restart running")
    (world.bin / "triggered_by").write_text("counter.socket\n")
    lifecycle.app_stopped(world.host(), "counter.service")
    assert not any(line.startswith("systemctl stop") for line in world.event_lines())


@pytest.mark.parametrize(
    ("result", "app_runs", "closed"),
    [
        ("exit-code", False, True),  # a refused or failed start: nothing may wait
        ("signal", False, True),
        ("signal", True, False),  # killed under a running app: Upholds= brings it back
        ("success", False, False),  # a clean stop: the app's stop closed it already
    ],
)
def test_litestream_ending_badly_closes_the_listener_of_an_app_that_does_not_run(
    world, monkeypatch, result, app_runs, closed
):
    world.systemctl(monkeypatch)
    monkeypatch.setenv("SERVICE_RESULT", result)
    (world.bin / "triggered_by").write_text("counter.socket\n")
    if not app_runs:
        inactive(world, "counter.service")
    lifecycle.litestream_stopped(world.host())
    stops = [line for line in world.event_lines() if line.startswith("systemctl stop")]
    assert stops == (["systemctl stop --no-block counter.socket"] if closed else [])


def test_litestream_ending_leaves_an_app_without_a_socket_alone(world, monkeypatch):
    world.systemctl(monkeypatch)
    monkeypatch.setenv("SERVICE_RESULT", "exit-code")
    inactive(world, "counter.service")
    lifecycle.litestream_stopped(world.host())
    assert not any(line.startswith("systemctl stop") for line in world.event_lines())


def test_an_app_that_exited_leaves_litestream_replicating(world, monkeypatch, capsys):
    world.systemctl(monkeypatch)
    lifecycle.app_stopped(world.host(), "counter.service")
    assert not any(line.startswith("systemctl stop") for line in world.event_lines())
    assert "exited (no stop job): litestream.service keeps replicating" in capsys.readouterr().out


# -- restore-from-replica, adopt-local -------------------------------------------


def test_restore_from_replica_keeps_the_local_file_aside(operator, capsys):
    (operator.state / "adopt.json").write_text(json.dumps({"replica": DESTINATION, "txid": 9}))
    lifecycle.restore_from_replica(operator.host())
    (aside,) = asides(operator)
    assert (aside / "counter.db").read_text() == "live"
    assert (aside / "counter.db-wal").exists() and (aside / ".counter.db-litestream").is_dir()
    assert not operator.db.exists() and not operator.db.with_name("counter.db-wal").exists()
    assert not (operator.state / "adopt.json").exists()
    assert operator.events()[:2] == ["systemctl stop", "systemctl start"]
    assert "nothing was deleted" in capsys.readouterr().out


def test_restore_from_replica_says_when_the_units_do_not_come_up(operator):
    inactive(operator, "litestream.service")
    with pytest.raises(Refused, match=r"litestream\.service is inactive"):
        lifecycle.restore_from_replica(operator.host())


def test_the_ways_out_are_for_root(world):
    for command in (lifecycle.restore_from_replica, lifecycle.adopt_local):
        with pytest.raises(Refused, match="as root") as caught:
            command(world.host())
        assert caught.value.code == 2


def test_adopt_local_saves_the_replicas_state_and_lets_the_file_go_on(operator, capsys):
    operator.local(3)
    lifecycle.adopt_local(operator.host())
    (aside,) = asides(operator)
    saved = aside / "replica-txid-9.db"
    assert saved.read_text() == "restored\n"
    adopt = json.loads((operator.state / "adopt.json").read_text())
    assert adopt == {"replica": DESTINATION, "txid": 9, "saved_as": str(saved)}
    assert operator.db.read_text() == "live", "the local file goes on"
    assert "adopted" in capsys.readouterr().out
    start(operator.host())  # the start-up guard lets it go on


def test_adopt_local_with_nothing_to_adopt_starts_again(operator, capsys):
    lifecycle.adopt_local(operator.host())
    assert "is not behind the replica: nothing to adopt" in capsys.readouterr().out
    assert not (operator.state / "adopt.json").exists() and asides(operator) == []
    assert "systemctl start" in operator.events()


def test_adopt_local_refuses_when_the_store_does_not_answer(operator):
    operator.local(3)
    operator.flag("unreachable")
    with pytest.raises(Refused, match=r"cannot be read \(.*\): try again later"):
        lifecycle.adopt_local(operator.host())
    assert not (operator.state / "adopt.json").exists()


def test_adopt_local_says_when_the_restore_times_out(operator):
    operator.local(3)
    operator.flag("restore_hangs")
    operator.settings["restore_timeout"] = 1
    with pytest.raises(Refused, match=r"\(timed out after 1 s\): nothing adopted"):
        lifecycle.adopt_local(operator.host())
    assert not (operator.state / "adopt.json").exists()


def test_a_status_that_does_not_answer_is_refused_not_a_traceback(world, monkeypatch):
    def hangs(self, *args, timeout, source=False):
        raise subprocess.TimeoutExpired([args[0]], timeout)

    monkeypatch.setattr(Litestream, "run", hangs)
    with pytest.raises(Refused, match="did not answer within 30 s"):
        world.host().litestream.local_txid()


def test_a_stale_rollback_journal_goes_with_its_database(world, operator):
    """One list of side files: a -journal is removed before a restore of a
    missing database (SQLite would roll it into the restored file) and set
    aside with the live file."""
    journal = operator.db.with_name("counter.db-journal")
    journal.write_text("hot journal")
    lifecycle.restore_from_replica(operator.host())
    (aside,) = asides(operator)
    assert (aside / "counter.db-journal").read_text() == "hot journal"
    journal.write_text("stale")
    lifecycle.restore_missing(operator.host())
    assert not journal.exists()
