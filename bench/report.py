"""The benchmark's figures as a Markdown table (targets beside them) and a
PNG plot."""

from __future__ import annotations

from pathlib import Path

from ack import summary as ack_summary


def _yes(ok: bool | None) -> str:
    return "" if ok is None else ("yes" if ok else "**no**")


def _row(cells: list) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def ack_markdown(a: dict) -> list[str]:
    lines = [
        "## Acknowledge after replication vs the default mode (same host, same run)",
        "",
        a["method"],
        "",
    ]
    if "litestream" in a:  # measured since 2026-12-07
        levels = ", ".join(level["interval"] for level in a["litestream"]["levels"])
        lines += [
            "The deployed Litestream ran with l0-retention"
            f" {a['litestream']['l0-retention']}, l0-retention-check-interval"
            f" {a['litestream']['l0-retention-check-interval']} and levels 1-3 every {levels}.",
            "",
        ]
    lines += [
        _row(
            [
                "connections",
                "round",
                "default req/s",
                "ack req/s",
                "ratio",
                "default p50 / p99 ms",
                "ack p50 / p99 ms",
                "store requests/h default / ack",
                "errors default / ack",
            ]
        ),
        _row(["---"] * 9),
    ]
    for p in a["points"]:
        d, k = p["default"], p["ack"]
        lines.append(
            _row(
                [
                    p["connections"],
                    p["round"],
                    f"{d['rps']:.0f}",
                    f"{k['rps']:.0f}",
                    f"{p['rps_ratio']:.2f}",
                    f"{d['p50_ms']:.1f} / {d['p99_ms']:.1f}",
                    f"{k['p50_ms']:.1f} / {k['p99_ms']:.1f}",
                    f"{d['store_requests_per_hour']:,} / {k['store_requests_per_hour']:,}",
                    f"{d['errors']} / {k['errors']}",
                ]
            )
        )
    return [*lines, ""]


def markdown(r: dict) -> str:
    m = r["machine"]
    lines = [
        "# Benchmark: figures as measured",
        "",
        f"`make bench` on {m['cpus']} x {m['cpu']}, {m['memory_gib']} GiB, kernel {m['kernel']}, "
        f"Docker {m['docker']}, {m['date']}; lab replica: {r['replica']}"
        + (" (**--quick: smoke run, not figures**)" if r.get("quick") else "")
        + ".",
        "",
    ]
    dates = r.get("section_dates", {})
    if len(set(dates.values())) > 1:  # sections re-run on their own (--only)
        lines += ["Sections measured at: " + ", ".join(f"{k} {v}" for k, v in dates.items()), ""]
    if "http" in r:
        h = r["http"]
        lines += [
            "## Requests: the counter vs a bare waitress hello"
            " (same host, same settings, same run)",
            "",
            _row(
                [
                    "connections",
                    "counter req/s",
                    "hello req/s",
                    "ratio",
                    "counter p50 / p99 ms",
                    "hello p50 / p99 ms",
                    "p99 ratio",
                    "errors (counter / hello)",
                ]
            ),
            _row(["---"] * 8),
        ]
        for p in h["points"]:
            c, o = p["counter"], p["hello"]
            lines.append(
                _row(
                    [
                        p["connections"],
                        f"{c['rps']:.0f}",
                        f"{o['rps']:.0f}",
                        f"{p['rps_ratio']:.2f}",
                        f"{c['p50_ms']:.1f} / {c['p99_ms']:.1f}",
                        f"{o['p50_ms']:.1f} / {o['p99_ms']:.1f}",
                        f"{p['p99_ratio']:.2f}",
                        f"{c['errors']} / {o['errors']}",
                    ]
                )
            )
        mil = h["million"]
        million, start = mil["at_million"], mil["at_start"]
        cnt = h["count"]
        lines += [
            "",
            f"Count after the runs: {cnt['counted']} visits counted for {cnt['answered']} answered "
            f"(at most {cnt['in_flight_at_stops_max']} in flight when wrk stopped): "
            f"{'exact' if cnt['exact'] else '**NOT exact**'}.",
            f"At {mil['visits_added']:,} visits more (32 connections): "
            f"{million['counter']['rps']:.0f} req/s vs {start['counter']['rps']:.0f} "
            f"before (x{mil['rps_ratio_million_vs_start']:.2f}); hello in that run "
            f"{million['hello']['rps']:.0f} req/s (ratio {million['rps_ratio']:.2f}).",
            "",
        ]
    if "ceiling" in r:
        c = r["ceiling"]
        lines += [
            f"## What the stack allows ({c['connections']} connections, same run,"
            f" medians of {c['rounds']} rounds)",
            "",
            _row(["server", "req/s", "ratio to hello", "p99 ms", "p99 ratio", "errors"]),
            _row(["---"] * 6),
        ]
        for s in c["servers"].values():
            lines.append(
                _row(
                    [
                        s["what"],
                        s["rps"],
                        f"{s['rps_ratio']:.2f}",
                        f"{s['p99_ms']:.1f}",
                        f"{s['p99_ratio']:.2f}",
                        s["errors"],
                    ]
                )
            )
        lines += [
            "",
            "The probes each leave one part of the counter out (docs/performance.md): Bottle with"
            " no database and no wait, and the durable store with no Bottle.",
            "",
        ]
    if "replication" in r:
        lines += [
            "## Replication lag: a write's answer → the write read back from the replica",
            "",
            _row(
                [
                    "intervals (upload, WAL read)",
                    "writes/s",
                    "writes",
                    "p50 s",
                    "p99 s",
                    "max s",
                    "store requests/hour",
                ]
            ),
            _row(["---"] * 7),
        ]
        for x in r["replication"]["lag"]:
            lines.append(
                _row(
                    [
                        x["sync_interval"],
                        x["rate"],
                        x["writes"],
                        f"{x['p50_s']:.2f}",
                        f"{x['p99_s']:.2f}",
                        f"{x['max_s']:.2f}",
                        f"{x['store_requests_per_hour']:,}",
                    ]
                )
            )
        lines += ["", r["replication"].get("method", ""), ""]
    if "ack" in r:
        lines += ack_markdown(r["ack"])
    if "restore" in r:
        lines += [
            "## Restore vs a raw download of the same bytes from the same store",
            "",
            _row(
                [
                    "database",
                    "bytes read",
                    "Litestream's restore s",
                    "raw download s",
                    "ratio",
                    "guard's restore s (fetch + local)",
                    "vs raw + local",
                ]
            ),
            _row(["---"] * 7),
        ]
        for x in r["restore"]["restore"]:
            staged = (
                f"{x['staged_s']:.1f} ({x['staged_fetch_s']:.1f} + {x['staged_local_s']:.1f})"
                if "staged_s" in x
                else "-"
            )
            lines.append(
                _row(
                    [
                        f"{x['size_mib']} MiB",
                        f"{x['bytes']:,}",
                        f"{x['restore_s']:.1f}",
                        f"{x['raw_download_s']:.1f}",
                        f"{x['ratio']:.2f}",
                        staged,
                        f"{x['staged_ratio']:.2f}" if "staged_ratio" in x else "-",
                    ]
                )
            )
        lines += ["", r["restore"].get("method", ""), ""]
    if "lost" in r:
        x = r["lost"]
        lines += [
            "## A lost host: data directory wiped, host rebooted",
            "",
            _row(
                [
                    "database",
                    "upload of its pages s",
                    "the guard's restore s",
                    "reboot to serving s",
                    "count restored",
                ]
            ),
            _row(["---"] * 5),
            _row(
                [
                    f"{x['size_mib']} MiB",
                    f"{x['upload_s']:.1f}",
                    f"{x['restore_s']:.1f}" if x.get("restore_s") else "-",
                    f"{x['reboot_to_serving_s']:.1f}",
                    f"{x['count_restored']} of {x['count_before']}",
                ]
            ),
            "",
            x.get("method", ""),
            "",
        ]
    lines += ["## Targets", "", _row(["measure", "value", "target", "met"]), _row(["---"] * 4)]
    for name, value, target, ok in targets(r):
        lines.append(_row([name, value, target, _yes(ok)]))
    if "memory" in r:
        lines += [
            "",
            "## Resident memory (cgroup, MiB)",
            "",
            _row(["unit", "MiB"]),
            _row(["---"] * 2),
        ]
        lines += [_row([unit, mib]) for unit, mib in r["memory"].items()]
    return "\n".join(lines) + "\n"


def _default_lag_p99(r: dict) -> tuple[str, float] | None:
    """The default mode's replication lag p99 at the highest paced rate with
    the deployed intervals (the replication section of the same file)."""
    rows = [x for x in r.get("replication", {}).get("lag", []) if x.get("default")]
    if not rows:
        return None
    row = max(rows, key=lambda x: x["rate"])
    return f"{row['rate']} writes/s", row["p99_s"]


def targets(r: dict) -> list[tuple[str, str, str, bool | None]]:
    out = []
    if "http" in r:
        p32 = next(p for p in r["http"]["points"] if p["connections"] == 32)
        out.append(
            (
                "req/s at 32 connections, counter / hello",
                f"{p32['rps_ratio']:.2f}",
                "≥ 0.75",
                p32["rps_ratio"] >= 0.75,
            )
        )
        out.append(
            (
                "p99 at 32 connections, counter / hello",
                f"{p32['p99_ratio']:.2f}",
                "≤ 1.5",
                p32["p99_ratio"] <= 1.5,
            )
        )
        out.append(
            (
                "count exact after the runs",
                str(r["http"]["count"]["exact"]),
                "True",
                r["http"]["count"]["exact"],
            )
        )
        ratio = r["http"]["million"]["rps_ratio_million_vs_start"]
        out.append(
            (
                "req/s at +1 M visits / at the start",
                f"{ratio:.2f}",
                "0.9 to 1.1",
                0.9 <= ratio <= 1.1,
            )
        )
    if "replication" in r:
        row = next(
            (x for x in r["replication"]["lag"] if x["rate"] == 100 and x.get("default")), None
        )
        row = row or next((x for x in r["replication"]["lag"] if x["rate"] == 100), None)
        if row:
            out.append(
                (
                    f"lag p99 at 100 writes/s, deployed intervals ({row['sync_interval']})",
                    f"{row['p99_s']:.2f} s",
                    "≤ 1 s",
                    row["p99_s"] <= 1.0,
                )
            )
    if "ack" in r:
        a = ack_summary(r["ack"])
        out.append(
            (
                "ack after replication: req/s at 32 connections / default mode (worst round)",
                f"{a['rps_ratio']:.2f}",
                "≥ 0.5",
                a["rps_ratio"] >= 0.5,
            )
        )
        lag = _default_lag_p99(r)
        out.append(
            (
                "ack after replication: p99 at 32 connections"
                + (f" vs default lag p99 ({lag[0]}) + 50 ms" if lag else ""),
                f"{a['ack_p99_ms']:.0f} ms" + (f" vs {lag[1] * 1e3 + 50:.0f} ms" if lag else ""),
                "≤ lag p99 + 50 ms",
                a["ack_p99_ms"] <= lag[1] * 1e3 + 50 if lag else None,
            )
        )
        out.append(
            (
                "ack after replication: store requests per hour at 32 connections (default mode)",
                f"{a['ack_store_requests_per_hour']:,} ({a['default_store_requests_per_hour']:,})",
                "stated",
                None,
            )
        )
    if "recovery" in r:
        rec = r["recovery"]
        x = rec["litestream_killed_to_replicating_s"]
        out.append(
            (
                "Litestream killed → replicating (max of runs)",
                f"{x['max']:.1f} s",
                "≤ 2 s",
                x["max"] <= 2,
            )
        )
        x = rec["app_killed_to_serving_s"]
        out.append(
            ("app killed → serving (max of runs)", f"{x['max']:.1f} s", "≤ 3 s", x["max"] <= 3)
        )
    if "deploy" in r:
        d = r["deploy"]
        worst = max(x["seconds"] for x in d["noop"])
        out.append(
            (
                "no-op site.yml (slowest of 2), changed",
                f"{worst:.0f} s, {max(x['changed'] for x in d['noop'])}",
                "≤ 15 s, 0",
                worst <= 15 and all(x["changed"] == 0 for x in d["noop"]),
            )
        )
        worst = max(x["seconds"] for x in d["app_only"])
        out.append(
            ("app-only change rolled out (slowest of 2)", f"{worst:.0f} s", "≤ 30 s", worst <= 30)
        )
    if "restore" in r:
        for x in r["restore"]["restore"]:
            if "staged_ratio" in x:
                out.append(
                    (
                        f"restore {x['size_mib']} MiB / (raw download + local restore)",
                        f"{x['staged_ratio']:.2f}",
                        "≤ 1.5",
                        x["staged_ratio"] <= 1.5,
                    )
                )
    if "lost" in r:
        x = r["lost"]
        # The guard's restore at that boot (its journal's figure), else the
        # staged restore of the same size in the restore section.
        restored_in = x.get("restore_s") or next(
            (
                y["staged_s"]
                for y in r.get("restore", {}).get("restore", [])
                if y["size_mib"] == x["size_mib"] and "staged_s" in y
            ),
            None,
        )
        if restored_in is not None:
            out.append(
                (
                    f"lost host, {x['size_mib']} MiB: reboot to serving",
                    f"{x['reboot_to_serving_s']:.1f} s",
                    f"≤ its restore + 10 s ({restored_in:.1f} + 10 s)",
                    x["reboot_to_serving_s"] <= restored_in + 10,
                )
            )
        out.append(
            (
                "lost host: count restored",
                f"{x['count_restored']} of {x['count_before']}",
                "equal",
                x["count_restored"] == x["count_before"],
            )
        )
    if "cold" in r:
        c = r["cold"]
        out.append(("make down + make demo", f"{c['total_s']:.0f} s", "≤ 60 s", c["total_s"] <= 60))
    return out


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [k for k in ("http", "replication") if k in r]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels) + ("http" in r), figsize=(5 * (len(panels) + 1), 4))
    axes = list(axes) if hasattr(axes, "__len__") else [axes]
    if "http" in r:
        pts = r["http"]["points"]
        conns = [p["connections"] for p in pts]
        ax = axes.pop(0)
        for name in ("counter", "hello"):
            ax.plot(conns, [p[name]["rps"] for p in pts], marker="o", label=name)
        ax.set(xscale="log", xlabel="connections", ylabel="requests/s", title="Throughput")
        ax.set_xticks(conns, [str(c) for c in conns])
        ax.legend()
        ax = axes.pop(0)
        for name in ("counter", "hello"):
            ax.plot(conns, [p[name]["p99_ms"] for p in pts], marker="o", label=f"{name} p99")
            ax.plot(
                conns, [p[name]["p50_ms"] for p in pts], marker=".", ls="--", label=f"{name} p50"
            )
        ax.set(xscale="log", yscale="log", xlabel="connections", ylabel="ms", title="Latency")
        ax.set_xticks(conns, [str(c) for c in conns])
        ax.legend()
    if "replication" in r:
        ax = axes.pop(0)
        rows = r["replication"]["lag"]
        for interval in dict.fromkeys(x["sync_interval"] for x in rows):
            mine = [x for x in rows if x["sync_interval"] == interval]
            ax.plot(
                [x["rate"] for x in mine],
                [x["p99_s"] for x in mine],
                marker="o",
                label=f"p99, {interval}",
            )
            ax.plot(
                [x["rate"] for x in mine],
                [x["p50_s"] for x in mine],
                marker=".",
                ls="--",
                label=f"p50, {interval}",
            )
        ax.set(xscale="log", xlabel="writes/s", ylabel="s", title="Replication lag")
        ax.legend()
    fig.suptitle(f"counter on the lab ({r['replica']}), {r['machine']['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
