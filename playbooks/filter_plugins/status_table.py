"""status_table: the rows of playbooks/status.yml as a table a person reads
at a glance (one line per host, one per other database of a host as
HOST/NAME, then the reasons of what is not well)."""

from __future__ import annotations

import datetime as dt
import time

# The first database's units (the counter's); another database's are in its report.
FIRST_UNITS = ["litestream.service", "counter.service", "litestream-restore-drill.timer"]
COLUMNS = [
    "host",
    "litestream",
    "app",
    "drill timer",
    "count",
    "local txid",
    "replica txid",
    "confirmed",
    "ready",
    "last drill",
    "store",
    "restorable",
    "history",
]


def _age(unix: float) -> str:
    seconds = max(0, time.time() - unix)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def _row(host: str, report: dict) -> tuple[list[str], list[str]]:
    units = report.get("units", {})
    unit_names = report.get("unit_names", FIRST_UNITS)
    guard = report.get("guard", {})
    ready = report.get("readiness", {})
    # Litestream and the app not running (another app has no readiness to say so).
    notes: list[str] = [
        f"{unit} is {units.get(unit, '?')}"
        for unit in unit_names[:2]
        if unit and units.get(unit, "?") != "active"
    ]
    litestream_state = guard.get("litestream", {})
    drill = guard.get("restore_drill")
    if drill is None:
        last = "none yet"
    else:
        when = _age(drill["finished_unix"]) if drill.get("finished_unix") else "?"
        last = f"{'ok' if drill.get('ok') else 'FAILED'} {when}"
        if not drill.get("ok"):
            notes.append(f"last restore drill failed: {drill.get('error', '')}")
    replica = guard.get("replica_txid", "?")
    store = {True: "reachable", False: "UNREACHABLE"}.get(guard.get("store_reachable"), "?")
    if guard.get("store_reachable") is False:
        notes.append(f"store: {replica}")
        replica = "?"
    if "error" in guard:
        notes.append(f"litestream-guard: {guard['error']}")
    if "error" in litestream_state:
        notes.append(f"Litestream's control socket: {litestream_state['error']}")
    check = guard.get("replica_check") or {}
    restorable = {True: "yes", False: "NO", None: "?"}.get(check.get("restorable"), "?")
    if check.get("new_history_pending"):
        restorable = "PENDING"
        notes.append(f"replica: {check.get('reason', '')}")
    elif check.get("restorable") is False:
        notes.append(f"replica cannot be restored: {check.get('reason', '')}")
    history = guard.get("history") or {}
    restarts = int(history.get("restarts", 0) or 0)
    last_restart = (history.get("last") or {}).get("at", "")
    history_cell = f"{restarts} new" + (f", last {last_restart}" if restarts else "")
    status = ready.get("status", 0)
    restoring = guard.get("restoring")
    if restoring:
        # The app waits for the restore: no /healthz to ask meanwhile.
        # Two steps: the plan's files fetched, then the database applied.
        mib = f"{restoring.get('done', 0) / 2**20:.0f} / {restoring.get('total', 0) / 2**20:.0f}"
        ready_cell = f"restoring: {mib} MiB"
        eta = restoring.get("eta_seconds")
        step = restoring.get("phase", "fetched")
        notes.append(f"restoring: {step} {mib} MiB" + (f", about {eta} s left" if eta else ""))
    elif "readiness" not in report:
        ready_cell = "-"  # another app's readiness is its own business
    elif status != 200:
        ready_cell = f"NO ({status})"
        notes.append(f"readiness: {ready.get('body', '')}")
    else:
        ready_cell = "yes"
    row = [
        host,
        *(units.get(unit, "?") if unit else "-" for unit in unit_names),
        str(guard.get("probe", "?")),
        str(guard.get("local_txid", "?")),
        str(replica),
        str(litestream_state.get("replicated_txid", "?")),
        ready_cell,
        last,
        store,
        restorable,
        history_cell,
    ]
    return row, notes


def status_table(reports: dict) -> str:
    """reports: {host: what playbooks/files/host-status.py printed, or
    {"unreachable": message}}."""
    rows, notes = [COLUMNS], []
    for host in sorted(reports):
        report = reports[host]
        if "unreachable" in report:
            rows.append([host] + ["?"] * (len(COLUMNS) - 1))
            notes.append(f"{host}: not reached: {report['unreachable']}")
            continue
        for label, part in [(host, report)] + [
            (f"{host}/{name}", database)
            for name, database in sorted(report.get("databases", {}).items())
        ]:
            row, part_notes = _row(label, part)
            rows.append(row)
            notes += [f"{label}: {note}" for note in part_notes]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines.append("")
    lines += notes or [
        "every host and database: units active, ready, replica confirmed, store reachable"
    ]
    lines.append(f"(as of {stamp})")
    return "\n".join(lines)


class FilterModule:
    def filters(self) -> dict:
        return {"status_table": status_table}
