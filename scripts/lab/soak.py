#!/usr/bin/env python3
"""make soak: the lab (`make demo`) under ~100 visits/s for MINUTES with a
random fault every 1-3 minutes, every answer recorded, the guarantees
checked all along; a report (faults x outcomes, a plot of throughput and
replication lag with the faults marked) written to OUT.{md,json,png}.

    scripts/lab/soak.py [--minutes 60] [--ack] [--seed N] [--out docs/soak]

Faults, on lab-app1 (chosen at random, one at a time): Litestream SIGKILL,
app SIGKILL, app SIGTERM from outside, `systemctl restart` of either unit,
the store paused (`docker pause`) 30-120 s, a deploy that changes the app
(site.yml with another counter_idle_timeout: the app restarts), and a power
cut (docker kill) with the disk lost (database removed), then a re-deploy.

Checks:
- the count never goes backwards: a visit sent after another's answer gets
  a higher number (across a power cut of the default mode: see the next);
- after each power cut the restored count holds every visit acknowledged
  (--ack: the acknowledge-after-replication mode), or loses at most
  LOSS_BOUND_S seconds of writes (default mode);
- readiness is never green while replication is down (the store paused)
  for more than READY_BOUND_S seconds (plus the probe's own period);
- every RESTORE_EVERY_S a restore drill of the replica (the guard's: the
  newest state restored into scratch, PRAGMA integrity_check) passes.
- level 1 keeps up: Litestream's newest L1 file (compaction of L0, every
  30 s) is never more than COMPACTION_BOUND_S old outside store pauses and
  power cuts (a stalled compaction piles L0 up on the store).

Exits 1 when a check fails. `make drills` runs it for 10 minutes into build/.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import json
import random
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import lab_host
from lab_host import HOST, ROOT, STORE, count_of, get, healthy, on_app, sh, wait

RATE, THREADS = 100, 8
GAP_S = (60, 180)  # between two faults
PAUSE_S = (30, 120)  # a store pause
RESTORE_EVERY_S = 300
READY_BOUND_S = 10  # counter_max_replica_lag in the lab
# Litestream compacts L0 into L1 every 30 s (10 s in the ack mode): the
# newest L1 file may be this old, outside store pauses and power cuts (and a
# minute after them).
COMPACTION_BOUND_S = 180
# With the store's keys, as the unit has them (S3: litestream.env).
LEVEL1_READ = (
    "set -a; [ ! -f /etc/litestream/litestream.env ] || . /etc/litestream/litestream.env; set +a;"
    " timeout 15 litestream ltx -config /etc/litestream.yml -level 1 /var/lib/counter/counter.db"
    " | tail -1"
)
PROBE_SLACK_S = 3  # the app's monitor polls once a second, this probe too
LOSS_BOUND_S = 2  # default mode: a power cut loses at most this much (docs/drills.md)
DRILL_RESULT = "/var/lib/litestream-restore-drill/result.json"
# The app's metrics, read on the host (its port answers only the scrapers).
METRICS_READ = (
    "python3 -c 'import urllib.request as u; "
    'print(u.urlopen("http://127.0.0.1:9391/metrics", timeout=3).read().decode())\' '
    "2>/dev/null || true"
)
FAULTS = (
    "litestream-sigkill",
    "app-sigkill",
    "app-sigterm",
    "app-restart",
    "litestream-restart",
    "store-pause",
    "deploy",
    "power-cut",
)


# -- the checks (pure: tests/lab/test_soak.py) -------------------------------------


@dataclass(frozen=True)
class Answer:
    sent: float
    done: float
    status: int  # 0: no answer (refused, cut, timed out)
    count: int | None


def backwards(answers: list[Answer], resets: list[float] = ()) -> list[tuple[Answer, int]]:
    """Answers 200 whose count is not above every count answered 200 before
    they were sent, with that highest count. ``resets``: times from which the
    answers before no longer count (power cuts of the default mode, whose
    loss is checked on its own)."""
    resets = sorted(resets)

    def segment(t: float) -> int:
        return bisect.bisect_right(resets, t)

    counted = sorted((a for a in answers if a.status == 200), key=lambda a: a.done)
    done_in: dict[int, tuple[list[float], list[int]]] = {}
    for a in counted:  # per segment: the answers' times and the highest count so far
        done, best = done_in.setdefault(segment(a.done), ([], []))
        done.append(a.done)
        best.append(max(a.count, best[-1] if best else 0))
    found = []
    for a in counted:
        done, best = done_in.get(segment(a.sent), ([], []))
        i = bisect.bisect_left(done, a.sent) - 1
        if i >= 0 and a.count <= best[i]:
            found.append((a, best[i]))
    return found


def green_while_down(
    probes: list[tuple[float, int]], down: list[tuple[float, float]], bound: float
) -> list[float]:
    """Times readiness answered 200 while replication had been down for more
    than ``bound`` seconds (``down``: (from, to) intervals)."""
    return [t for t, status in probes if status == 200 and any(a + bound < t <= b for a, b in down)]


def seconds_to_red(probes: list[tuple[float, int]], start: float, end: float) -> float | None:
    """From ``start`` to the first readiness answer that is not 200, before ``end``."""
    for t, status in probes:
        if start <= t <= end and status != 200:
            return t - start
    return None


def compaction_behind(
    samples: list[tuple[float, float]], excused: list[tuple[float, float]], bound: float
) -> list[tuple[float, float]]:
    """(time, age) of the samples whose newest level-1 file (``samples``:
    (time, when that file was made)) was older than ``bound`` seconds,
    outside the ``excused`` intervals (the store away, the host down)."""
    return [
        (t, round(t - made, 1))
        for t, made in samples
        if t - made > bound and not any(a <= t <= b for a, b in excused)
    ]


def throughput(answers: list[Answer], start: float, step: float = 10) -> list[tuple[float, float]]:
    """(seconds since start, answers 200 per second) per ``step`` seconds,
    the last (partial) step left out."""
    buckets: dict[int, int] = {}
    for a in answers:
        if a.status == 200:
            buckets[int((a.done - start) // step)] = (
                buckets.get(int((a.done - start) // step), 0) + 1
            )
    last = max(buckets, default=-1)
    return [(i * step, buckets.get(i, 0) / step) for i in range(last)]


# -- the lab -----------------------------------------------------------------------


def replica_type() -> str:
    config = on_app("cat /etc/litestream.yml")
    return "s3" if re.search(r"^\s+type: s3$", config, re.M) else "sftp"


def deploy(replica: str, ack: bool, idle_timeout: int = 10) -> float:
    """site.yml with the store, the mode, and the idle timeout a "deploy"
    fault changes (the env file changes: the app restarts)."""
    return lab_host.deploy(settings(replica, ack, idle_timeout))


def settings(replica: str, ack: bool, idle_timeout: int = 10) -> dict:
    return {
        "lab_replica": replica,
        "counter_ack_after_replication": ack,
        "counter_idle_timeout": idle_timeout,
    }


class Recorder:
    """The load (THREADS workers, ~RATE visits/s, every answer kept), the
    readiness probe (once a second) and the replication lag (the app's
    metric, every 5 s)."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.probes: list[tuple[float, int]] = []
        self.lag: list[tuple[float, float]] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._visit) for _ in range(THREADS)]
        self.level1: list[tuple[float, float]] = []
        self.threads += [
            threading.Thread(target=self._probe),
            threading.Thread(target=self._lag),
            threading.Thread(target=self._compaction),
        ]

    def max_ack(self, before: float) -> int:
        with self.lock:
            return max(
                (a.count for a in self.answers if a.status == 200 and a.done < before), default=0
            )

    def _visit(self) -> None:
        gap = THREADS / RATE
        while not self.stop.is_set():
            sent = time.time()
            status, body = get("/")
            number = count_of(body) if status == 200 else None
            answer = Answer(
                sent,
                time.time(),
                status if number is not None or status != 200 else 0,
                number,
            )
            with self.lock:
                self.answers.append(answer)
            time.sleep(max(0.0, gap - (time.time() - sent)))

    def _probe(self) -> None:
        while not self.stop.wait(1):
            self.probes.append((time.time(), get("/healthz", timeout=2)[0]))

    def _lag(self) -> None:
        while not self.stop.wait(5):
            out = on_app(METRICS_READ, timeout=20, check=False)
            found = re.search(r"^counter_replication_lag_seconds (\S+)$", out, re.M)
            if found:
                self.lag.append((time.time(), float(found.group(1))))

    def _compaction(self) -> None:
        while not self.stop.wait(30):
            # level, min TXID, max TXID, size, created (UTC, RFC 3339)
            fields = on_app(LEVEL1_READ, timeout=20, check=False).split()
            if len(fields) == 5 and fields[0] == "1":
                made = dt.datetime.fromisoformat(fields[4].replace("Z", "+00:00")).timestamp()
                self.level1.append((time.time(), made))

    def __enter__(self) -> Recorder:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


@dataclass
class Fault:
    kind: str
    start: float
    end: float = 0.0
    detail: dict = field(default_factory=dict)
    cut: float = 0.0  # power cuts: when the host was dead (lab_host.power_cut)


def restored_after(answers: list[Answer], cut: float, until: float = float("inf")) -> int | None:
    """What a power cut's host restored: the lowest count answered to a visit
    sent after the cut (and before ``until``, the next cut), less one (None:
    nothing answered)."""
    counts = [a.count for a in answers if a.status == 200 and cut <= a.sent < until]
    return min(counts) - 1 if counts else None


def inflict(
    kind: str, rec: Recorder, replica: str, ack: bool, rng: random.Random, deploys: list[int]
) -> Fault:
    fault = Fault(kind, time.time())
    if kind == "litestream-sigkill":
        on_app("systemctl kill -s KILL litestream.service")
    elif kind == "app-sigkill":
        on_app("systemctl kill -s KILL counter.service")
    elif kind == "app-sigterm":
        on_app("kill -TERM $(systemctl show -p MainPID --value counter.service)")
    elif kind == "app-restart":
        on_app("systemctl restart counter.service")
    elif kind == "litestream-restart":
        on_app("systemctl restart litestream.service")
    elif kind == "store-pause":
        seconds = rng.randint(*PAUSE_S)
        sh("docker", "pause", STORE)
        try:
            time.sleep(seconds)
        finally:
            sh("docker", "unpause", STORE)
        fault.detail["paused_s"] = seconds
    elif kind == "deploy":
        deploys[0] = 11 if deploys[0] == 10 else 10  # the env file changes: the app restarts
        fault.detail["deploy_s"] = round(deploy(replica, ack, deploys[0]), 1)
    elif kind == "power-cut":
        # The load goes on throughout: what the host restored is read from
        # the load's own answers in analyse() (the first count after the cut).
        fault.cut = lab_host.power_cut(settings(replica, ack, deploys[0]))
        fault.detail["acknowledged"] = rec.max_ack(fault.cut)
    fault.end = time.time()
    try:
        fault.detail["ready_after_s"] = round(wait(healthy, 180, "ready again"), 1)
    except RuntimeError as error:
        fault.detail["ready_after_s"] = None
        fault.detail["error"] = str(error)
    return fault


def restore_drill() -> dict:
    on_app("systemctl start litestream-restore-drill.service", timeout=600, check=False)
    try:
        result = json.loads(on_app(f"cat {DRILL_RESULT}"))
    except (RuntimeError, ValueError) as error:
        return {"ok": False, "why": str(error)}
    return {"ok": bool(result.get("ok")), "why": result.get("reason", "")}


# -- the run and its report ----------------------------------------------------------


def run(minutes: float, ack: bool, seed: int) -> dict:
    rng = random.Random(seed)  # noqa: S311 - picks faults, reproducibly from the seed
    replica = replica_type()
    if not healthy():
        raise SystemExit(f"{HOST} is not ready: run `make demo` first")
    deploys = [10]
    deploy(replica, ack, deploys[0])
    wait(healthy, 120, "ready in the mode")
    faults: list[Fault] = []
    drills: list[tuple[float, dict]] = []
    start = time.time()
    end = start + minutes * 60
    next_drill = start + RESTORE_EVERY_S
    with Recorder() as rec:
        while time.time() < end:
            pause = rng.uniform(*GAP_S)
            while time.time() < min(end, start + (faults[-1].end - start if faults else 0) + pause):
                if time.time() >= next_drill:
                    drills.append((time.time(), restore_drill()))
                    next_drill = time.time() + RESTORE_EVERY_S
                time.sleep(1)
            if time.time() >= end:
                break
            kind = rng.choice(FAULTS)
            print(f"soak: {dt.datetime.now():%H:%M:%S} {kind}", flush=True)
            faults.append(inflict(kind, rec, replica, ack, rng, deploys))
            print(f"soak: {kind}: {faults[-1].detail}", flush=True)
        time.sleep(5)
    drills.append((time.time(), restore_drill()))
    if ack:
        deploy(replica, False)  # back to the default mode
    return analyse(rec, faults, drills, start, ack, replica, minutes, seed)


def analyse(
    rec: Recorder,
    faults: list[Fault],
    drills,
    start: float,
    ack: bool,
    replica: str,
    minutes: float,
    seed: int,
) -> dict:
    answers = rec.answers
    cuts = [f for f in faults if f.kind == "power-cut"]
    ends = [f.cut for f in cuts[1:]] + [float("inf")]  # each cut's loss up to the next cut
    for f, until in zip(cuts, ends, strict=True):
        restored = restored_after(answers, f.cut, until)
        f.detail["restored"] = restored if restored is not None else -1
        f.detail["lost"] = max(0, f.detail["acknowledged"] - f.detail["restored"])
    # Default mode: a power cut may lose the newest answered visits (checked
    # against the bound below); the count goes on from what was restored.
    resets = [] if ack else [f.cut for f in cuts]
    back = backwards(answers, resets)
    down = [(f.start, f.end) for f in faults if f.kind == "store-pause"]
    green = green_while_down(rec.probes, down, READY_BOUND_S + PROBE_SLACK_S)
    excused = [(f.start, f.end + 60) for f in faults if f.kind in ("store-pause", "power-cut")]
    behind = compaction_behind(rec.level1, excused, COMPACTION_BOUND_S)
    rate = (
        sum(1 for a in answers if a.status == 200) / max(1.0, answers[-1].done - start)
        if answers
        else 0
    )
    if ack:
        loss_bad = [f for f in cuts if f.detail["restored"] < f.detail["acknowledged"]]
    else:
        loss_bad = [f for f in cuts if f.detail["lost"] > LOSS_BOUND_S * rate]
    rows = []
    for f in faults:
        during = [
            a for a in answers if f.start <= a.sent <= f.end + (f.detail.get("ready_after_s") or 0)
        ]
        failed = sum(1 for a in during if a.status != 200)
        row = {
            "kind": f.kind,
            "at_s": round(f.start - start),
            "failed": failed,
            "answered": len(during) - failed,
        } | f.detail
        if f.kind == "store-pause":
            row["red_after_s"] = seconds_to_red(rec.probes, f.start, f.end)
        rows.append(row)
    checks = {
        "count never backwards": (
            not back,
            f"{len(back)} answers not above an earlier one"
            + (f" (first: {back[0][0]}, after {back[0][1]})" if back else ""),
        ),
        "power cuts within the bound": (
            not loss_bad,
            f"{len(cuts)} cuts; "
            + ("restored >= acknowledged" if ack else f"lost <= {LOSS_BOUND_S} s of writes")
            + f"; {len(loss_bad)} over",
        ),
        "readiness never green while replication down": (
            not green,
            f"{len(green)} green answers more than {READY_BOUND_S + PROBE_SLACK_S} s "
            "into a store pause",
        ),
        "level 1 keeps up (compaction)": (
            bool(rec.level1) and not behind,
            f"{len(rec.level1)} samples; {len(behind)} with the newest L1 file older than "
            f"{COMPACTION_BOUND_S} s"
            + (f" (first at {round(behind[0][0] - start)} s: {behind[0][1]} s)" if behind else ""),
        ),
        "restore drills pass": (
            all(d["ok"] for _, d in drills),
            f"{sum(d['ok'] for _, d in drills)}/{len(drills)} passed",
        ),
    }
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "minutes": minutes,
        "mode": "ack after replication" if ack else "default",
        "replica": replica,
        "seed": seed,
        "answers": len(answers),
        "answered_200": sum(1 for a in answers if a.status == 200),
        "rate": round(rate, 1),
        "faults": rows,
        "drills": [{"at_s": round(t - start), **d} for t, d in drills],
        "checks": {k: {"ok": ok, "detail": why} for k, (ok, why) in checks.items()},
        "throughput": throughput(answers, start),
        "lag": [(round(t - start, 1), v) for t, v in rec.lag],
    }


def markdown(r: dict) -> str:
    lines = [
        "# Soak: faults at random under load, checked all along",
        "",
        f"`make soak` on the lab ({r['replica']} store), {r['minutes']:g} minutes, "
        f"mode: {r['mode']}, seed {r['seed']}, {r['date']}: {r['answers']:,} requests, "
        f"{r['answered_200']:,} answered 200 (~{r['rate']} /s).",
        "",
        "## Checks",
        "",
        "| check | held | detail |",
        "| --- | --- | --- |",
        *(
            f"| {k} | {'yes' if v['ok'] else '**no**'} | {v['detail']} |"
            for k, v in r["checks"].items()
        ),
        "",
        "## Faults and outcomes",
        "",
        "| kind | times | failed requests (sum) | failed (max of one) "
        "| ready again after, s (max) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for kind in FAULTS:
        rows = [f for f in r["faults"] if f["kind"] == kind]
        if rows:
            ready = [f.get("ready_after_s") for f in rows if f.get("ready_after_s") is not None]
            lines.append(
                f"| {kind} | {len(rows)} | {sum(f['failed'] for f in rows)} | "
                f"{max(f['failed'] for f in rows)} | {max(ready) if ready else 'never'} |"
            )
    lines += [
        "",
        "Every fault, in order:",
        "",
        "| at s | kind | failed | answered | detail |",
        "| --- | --- | --- | --- | --- |",
    ]
    for f in r["faults"]:
        detail = {k: v for k, v in f.items() if k not in ("kind", "at_s", "failed", "answered")}
        cells = (f["at_s"], f["kind"], f["failed"], f["answered"], json.dumps(detail))
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    lines += ["", "![throughput and lag](soak.png)" if r.get("plot") else "", ""]
    return "\n".join(lines)


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    step = r["throughput"][1][0] if len(r["throughput"]) > 1 else 10
    xs = [(x + step / 2) / 60 for x, _ in r["throughput"]]  # each step at its middle
    top.plot(xs, [y for _, y in r["throughput"]], lw=0.8)
    top.set_ylabel("answers 200 / s")
    bottom.plot([x / 60 for x, _ in r["lag"]], [y for _, y in r["lag"]], lw=0.8, color="tab:red")
    bottom.set_ylabel("replication lag, s")
    bottom.set_xlabel("minutes")
    for f in r["faults"]:
        for axis in (top, bottom):
            axis.axvline(f["at_s"] / 60, color="grey", lw=0.5, ls=":")
        top.annotate(
            f["kind"], (f["at_s"] / 60, top.get_ylim()[1]), rotation=90, fontsize=6, va="top"
        )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--ack", action="store_true", help="the acknowledge-after-replication mode")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--out", default=str(ROOT / "docs" / "soak"))
    args = parser.parse_args()
    result = run(args.minutes, args.ack, args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot(result, out.with_suffix(".png"))
    result["plot"] = out.with_suffix(".png").name
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    text = markdown(result).replace("(soak.png)", f"({result['plot']})")
    out.with_suffix(".md").write_text(text)
    print(text)
    return 0 if all(c["ok"] for c in result["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
