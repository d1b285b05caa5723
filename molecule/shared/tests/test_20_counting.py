"""Counting as a visitor sees it."""

from __future__ import annotations

from hosts import concurrent_visits, get, visit


def test_each_get_counts_one_more(app):
    first = visit(app)
    assert [visit(app), visit(app)] == [first + 1, first + 2]


def test_the_answer_is_one_plain_text_line(app):
    answer = get(app, "/")
    assert answer["status"] == 200
    assert answer["body"].count("\n") == 1
    assert answer["body"].startswith("This server has been visited ")


def test_200_concurrent_requests_count_exactly_200(app):
    before = visit(app)
    counts = concurrent_visits(app, 200)
    assert counts == list(range(before + 1, before + 201))
    assert visit(app) == before + 201


def test_health_and_other_paths_do_not_count(app):
    before = visit(app)
    for path in ("/healthz", "/healthz", "/favicon.ico", "/robots.txt"):
        get(app, path)
    assert get(app, "/healthz") == {"status": 200, "body": "ok\n"}
    assert get(app, "/favicon.ico")["status"] == 404
    assert visit(app) == before + 1
