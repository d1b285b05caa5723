"""status: where the database and its replica stand, as JSON."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3

from . import settings as settings_module
from .drill import last_result, probe
from .errors import Refused, StoreUnreachable
from .host import Host
from .litestream import max_txid
from .state import read_json


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "status", help="where the local database and its replica stand (JSON)"
    )
    # What restore.yml passes to every one of its commands (status is JSON
    # anyway): accepted, as it always was.
    parser.add_argument("--json", action="store_true", help="(the output is JSON anyway)")
    parser.set_defaults(run=lambda host, opts: status(host))
    commands.add_parser(
        "databases",
        help='every database of the host: its name ("": the first), settings, units (JSON)',
    ).set_defaults(run=lambda host, opts: print(json.dumps(databases(), indent=2)), whole_host=True)


def databases() -> list[dict]:
    """Every database of the host as its settings say: name ("" for the
    first), settings file, Litestream's unit and the app's ("" when none;
    None where the settings cannot be read)."""
    found = []
    for name, path in settings_module.every_database():
        entry: dict = {"name": name, "settings": str(path)}
        try:
            settings = settings_module.load(path)
        except Refused as error:
            entry.update(unit=None, app_unit=None, error=str(error))
        else:
            entry.update(unit=settings.unit, app_unit=settings.app_unit)
        found.append(entry)
    return found


def restoring(path) -> dict | None:
    """The start-up restore's progress, while the guard that writes it runs
    (a record a killed guard left says nothing)."""
    record = read_json(path)
    if not record:
        return None
    try:
        os.kill(int(record.get("pid", 0)), 0)
    except (ValueError, ProcessLookupError):
        return None
    except PermissionError:
        pass  # it runs, as another user
    return record if record.get("pid") else None


def status(host: Host) -> None:
    """Where the database and its replica stand, as JSON: Litestream's
    local position, the replica's newest TXID as the store lists it (or
    why it could not be read), the position Litestream has confirmed in
    the replica (control socket), the probe's value and the last restore
    drill's outcome."""
    db, state = host.db, host.state
    report: dict = {"db": str(db), "exists": db.exists()}
    try:
        report["local_txid"] = host.litestream.local_txid()
    except Refused as error:
        report["local_txid"] = None
        report["local_error"] = str(error)
    try:
        files = host.litestream.replica_files()
        report["replica_txid"] = max_txid(files) if files else "empty"
        report["store_reachable"] = True
    except StoreUnreachable as error:
        report["replica_txid"] = f"unreachable ({error})"
        report["store_reachable"] = False
    try:
        local, replicated = host.control.sync_position()
        report["litestream"] = {"txid": local, "replicated_txid": replicated}
    except host.control.ERRORS as error:
        report["litestream"] = {"error": str(error) or type(error).__name__}
    try:
        report["probe"] = probe(host, db) if db.exists() else None
    except (Refused, sqlite3.Error) as error:
        report["probe"] = f"error ({error})"
    report["restore_drill"] = last_result(host)
    # A restore fetching its files now: bytes fetched of the plan's.
    report["restoring"] = restoring(state.restoring_path)
    report["last_known"] = state.read_record()
    report["destination"] = host.destination
    report["replica_check"] = state.published()
    report["history"] = state.history()
    report["destinations_left"] = state.destinations()
    print(json.dumps(report, indent=2))
