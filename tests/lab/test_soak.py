"""The soak's checks (scripts/lab/soak.py), on answers made up here."""

from __future__ import annotations

import importlib.util
import sys
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
