"""The soak's checks (scripts/lab/soak.py), on answers made up here."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

SOAK = Path(__file__).resolve().parents[2] / "scripts" / "lab" / "soak.py"
sys.path.insert(0, str(SOAK.parent))  # its lab_host.py, as when it runs as a script
spec = importlib.util.spec_from_file_location("soak", SOAK)
soak = sys.modules["soak"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(soak)
Answer = soak.Answer


def ok(sent: float, done: float, count: int) -> Answer:
    return Answer(sent, done, 200, count)


def test_overlapping_requests_may_finish_in_any_order():
    answers = [ok(0.0, 0.5, 2), ok(0.1, 0.4, 1), ok(0.6, 0.7, 3)]
    assert soak.backwards(answers) == []


def test_a_visit_sent_after_an_answer_must_count_higher():
    answers = [ok(0.0, 0.1, 5), ok(0.2, 0.3, 5), ok(0.4, 0.5, 4), ok(0.6, 0.7, 6)]
    assert [(a.count, best) for a, best in soak.backwards(answers)] == [(5, 5), (4, 5)]


def test_failed_requests_are_not_counts():
    answers = [ok(0.0, 0.1, 5), Answer(0.2, 0.3, 503, None), Answer(0.2, 9.0, 0, None)]
    assert soak.backwards(answers) == []


def test_a_reset_forgets_what_came_before_it_only():
    answers = [ok(0.0, 0.1, 100), ok(5.0, 5.1, 90), ok(5.2, 5.3, 89)]
    assert soak.backwards(answers) != []
    found = soak.backwards(answers, resets=[2.0])
    assert [(a.count, best) for a, best in found] == [(89, 90)]


def test_green_only_counts_past_the_bound_of_a_pause():
    probes = [(t, 200) for t in (5, 11, 14, 30)] + [(12, 503)]
    assert soak.green_while_down(sorted(probes), [(0, 20)], bound=13) == [14]
    assert soak.seconds_to_red(sorted(probes), 0, 20) == 12


def test_throughput_per_bucket():
    answers = [ok(0, t, i) for i, t in enumerate((1, 2, 12, 25), start=1)]
    # The last step, partial, is left out.
    assert soak.throughput(answers, start=0, step=10) == [(0, 0.2), (10, 0.1)]


def test_level1_too_old_outside_the_excused_intervals_is_reported():
    samples = [(100.0, 90.0), (400.0, 150.0), (700.0, 300.0), (1000.0, 990.0)]
    # at 400: 250 s old but within a store pause; at 700: 400 s old, reported
    assert soak.compaction_behind(samples, [(350.0, 450.0)], 180) == [(700.0, 400.0)]
    assert soak.compaction_behind(samples[-1:], [], 180) == []


def test_a_power_cut_of_the_default_mode_is_a_loss_not_a_step_back():
    # As in a 10-minute soak: the fault begins at 10.0, answers still come from
    # the old host until it is dead (cut at 10.5, up to 304), the restored host
    # answers from 257 on (it restored 256: 48 answered visits lost).
    answers = [ok(t / 100, t / 100 + 0.01, 200 + t // 10) for t in range(0, 1050, 10)]
    answers += [Answer(10.6, 11.0, 0, None)]
    answers += [ok(40.0 + i / 100, 40.01 + i / 100, 257 + i) for i in range(50)]
    rec = types.SimpleNamespace(answers=answers, probes=[], level1=[(45.0, 44.0)], lag=[])
    cut = soak.Fault("power-cut", 10.0, 39.0, {"acknowledged": 304}, cut=10.5)
    assert soak.restored_after(answers, cut.cut) == 256
    report = soak.analyse(rec, [cut], [], 0.0, False, "sftp", 1, 1)
    checks = report["checks"]
    assert checks["count never backwards"]["ok"], checks
    assert report["faults"][0]["restored"] == 256
    assert report["faults"][0]["lost"] == 304 - 256
    # In the acknowledge-after-replication mode the same answers fail both checks.
    ack = soak.analyse(rec, [cut], [], 0.0, True, "sftp", 1, 1)["checks"]
    assert not ack["count never backwards"]["ok"]
    assert not ack["power cuts within the bound"]["ok"]


def test_each_power_cut_is_charged_only_its_own_loss():
    answers = [ok(1.0, 1.1, 100), ok(20.0, 20.1, 91), ok(21.0, 21.1, 92)]
    answers += [ok(40.0, 40.1, 50), ok(41.0, 41.1, 51)]
    assert soak.restored_after(answers, 10.0, 30.0) == 90
    assert soak.restored_after(answers, 30.0) == 49
    rec = types.SimpleNamespace(answers=answers, probes=[], level1=[(45.0, 44.0)], lag=[])
    cuts = [
        soak.Fault("power-cut", 9.0, 19.0, {"acknowledged": 100}, cut=10.0),
        soak.Fault("power-cut", 29.0, 39.0, {"acknowledged": 92}, cut=30.0),
    ]
    faults = soak.analyse(rec, cuts, [], 0.0, False, "sftp", 1, 1)["faults"]
    assert [(f["restored"], f["lost"]) for f in faults] == [(90, 10), (49, 43)]
