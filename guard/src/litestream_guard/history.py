"""This host's histories in its destinations: where it left one, a new
history begun (what the path held moved aside), a return to its own older
history, and the refusals that keep two histories out of one place."""

from __future__ import annotations

import re

from .errors import EXIT_REFUSED, Refused, StoreUnreachable
from .host import Host
from .litestream import max_txid
from .output import say, warn
from .state import now, stamp
from .stores import Store


def guard_command(unit: str) -> str:
    """How an operator names this database's guard: `litestream-guard`, or
    `litestream-guard --database NAME` for litestream@NAME.service."""
    match = re.fullmatch(r"litestream@(.+)\.service", unit or "")
    return "litestream-guard" + (f" --database {match.group(1)}" if match else "")


def ways_out(guard: str = "litestream-guard") -> str:
    return (
        f"Not starting. Ways out (as root): `{guard} restore-from-replica` "
        f"(the local file is kept aside) or `{guard} adopt-local` (the "
        "replica's newest state is kept aside, the local file goes on)."
    )


def rollback(host: Host, local: int, replica: int) -> str:
    return (
        f"REFUSED: {host.db} is at TXID {local} but its replica is at TXID {replica}: "
        "the local file is older than what was replicated (a VM snapshot revert, an "
        "old volume, a restored backup?). Starting would roll the replica back. "
        f"{ways_out(guard_command(host.settings.unit))}"
    )


def foreign(
    destination: str,
    files: list[dict],
    replica: int,
    known: dict | str | None,
    guard: str = "litestream-guard",
) -> str:
    levels = sorted({int(f["level"]) for f in files})
    if isinstance(known, str):
        what = known
    elif known:
        what = (
            f"this host left it at TXID {known['txid']} ({known['left_at']}) and it now "
            f"holds TXID {replica}: another writer has been there since"
        )
    else:
        what = "this host has no record of replicating there"
    return (
        f"REFUSED: the replica path {destination} holds another history: "
        f"{len(files)} LTX files up to TXID {replica} (levels {levels}), and {what}. "
        "Replicating there would mix two histories in one place. Not starting. Ways out: "
        "point litestream_replica at an empty path and deploy again, or take the path "
        f"over (as root on this host: `{guard} takeover`): what it holds is moved "
        f"under {destination}/aside-<time> (never deleted) and this host's history "
        "begins there."
    )


def left_as_it_was(known: dict | None, replica: int) -> bool:
    """A destination this host left holds what it left there: at least the
    position the replica had confirmed, at most the local position every
    upload there came from."""
    if not known:
        return False
    return known["txid"] <= replica <= max(known["txid"], known.get("local_txid") or 0)


def note_departure(host: Host, local: int | None) -> None:
    """The record names another destination: this host switched. Keep
    where it left that one (the replica's confirmed position, and the
    local position every upload there came from) before the local state
    is reset for the new one."""
    state = host.state
    record = state.raw_record()
    if not record or record.get("replica") in (None, host.destination):
        return
    data = state.destinations_data()
    left = data.setdefault("left", {})
    entry = left.get(record["replica"])
    if entry and entry.get("record_at") == record.get("at"):
        return  # noted at an earlier attempt of this start
    if local is not None and local < record["txid"]:
        raise Refused(
            f"REFUSED: {host.db} is at TXID {local} but the replica it left "
            f"({record['replica']}) is at TXID {record['txid']}: the local file is older than "
            "what was replicated; it does not begin a history elsewhere. " + ways_out(),
            EXIT_REFUSED,
        )
    left[record["replica"]] = {
        "txid": record["txid"],
        "local_txid": local if local is not None and local >= record["txid"] else None,
        "left_at": now(),
        "record_at": record.get("at"),
    }
    state.write_json(state.destinations_path, data)
    say(
        f"This host replicated to {record['replica']} up to TXID {record['txid']}: it now "
        f"replicates to {host.destination}. The old destination is left as it is."
    )


def begin(host: Host, why: str, files: list[dict]) -> None:
    """A new history at this destination: what the path holds is moved
    aside (never deleted), Litestream's local state reset; it uploads a
    snapshot of the current database as TXID 1."""
    aside = ""
    if files:
        try:
            store = Store.of(
                host.settings.replica, host.litestream.env(), host.settings.check_timeout
            )
            aside = store.move_aside(stamp())
            left = host.litestream.replica_files()
        except StoreUnreachable as error:
            raise Refused(
                f"A new history must begin at {host.destination} ({why}), but what the "
                f"path holds could not be moved aside ({error}): not starting, will retry"
            ) from None
        if left:
            raise Refused(
                f"A new history must begin at {host.destination} ({why}), but after moving "
                f"its files to {aside} the path still lists {len(left)} LTX files: "
                "not starting, will retry"
            )
    host.litestream.reset()
    state = host.state
    history = state.history()
    history["restarts"] = int(history.get("restarts", 0)) + 1
    history["pending"] = {"since": now(), "after_txid": 0, "destination": host.destination}
    history["last"] = {
        "at": now(),
        "why": why,
        "aside": aside,
        "destination": host.destination,
    }
    state.write_history(history)
    state.write_record(0, "new history")
    state.publish_pending(f"new replica history begun ({why}); waiting for its snapshot")
    warn(
        f"REPLICA HISTORY RESTARTED at {host.destination}: {why}. "
        + (
            f"What the path held is kept under {aside} (restorable as a replica path of "
            "its own; nothing deleted). "
            if aside
            else ""
        )
        + "Litestream's local state was reset: it uploads a snapshot of the current "
        "database as TXID 1. Readiness stays red until the replica holds it."
    )


def return_to(host: Host, known: dict, files: list[dict], replica: int) -> None:
    """Back on a destination holding this host's own older history: go on
    there with a snapshot of the current file as its next TXID
    (Litestream's behind-replica check, fed with the level-0 file that
    ends the history), or, when level 0 does not end it, begin anew."""
    level0 = max_txid([f for f in files if int(f["level"]) == 0])
    if level0 != replica:
        begin(
            host,
            f"{host.destination} holds this host's own older history up to TXID {replica}, "
            "but its level 0 does not end it, so Litestream cannot go on from it",
            files,
        )
        return
    host.litestream.reset()
    state = host.state
    history = state.history()
    history["pending"] = {
        "since": now(),
        "after_txid": replica,
        "destination": host.destination,
    }
    state.write_history(history)
    state.write_record(replica, "returned")
    state.publish_pending(f"back on this host's older history at TXID {replica}")
    say(
        f"Back on {host.destination}, which holds this host's own older history up to "
        f"TXID {replica} (left {known['left_at']}): Litestream goes on there with a "
        f"snapshot of the current database as TXID {replica + 1}; the older states stay "
        "restorable by TXID."
    )
