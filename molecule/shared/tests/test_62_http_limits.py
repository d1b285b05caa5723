"""HTTP limits as a client meets them on the app host's port."""

from __future__ import annotations

import json

import programs
from deployment import IDLE_TIMEOUT, PORT
from hosts import visit


def test_big_bodies_big_headers_and_idle_clients_are_refused_without_counting(app):
    before = visit(app)
    wait = str(IDLE_TIMEOUT + 10)
    answers = json.loads(
        app.check_output("python3 -c %s %s %s", programs.text("raw_requests.py"), str(PORT), wait)
    )
    big_body, big_header, idle = answers["big_body"], answers["big_header"], answers["idle"]
    # Refused on the declared length, at once: the body was never sent.
    assert big_body["status"] == 413, answers
    assert big_body["seconds"] < 5, answers
    assert big_header["status"] in (400, 431), answers
    assert big_header["seconds"] < 5, answers
    # Closed after the idle timeout (waitress looks once a second).
    assert idle["status"] == 0 and "still open" not in idle["answer"], answers
    assert IDLE_TIMEOUT - 1 <= idle["seconds"] <= IDLE_TIMEOUT + 5, answers
    assert visit(app) == before + 1, "refused requests do not count"
