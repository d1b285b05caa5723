import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor


def test_get_counts_one_line_plain_text(call):
    status, headers, body = call("GET", "/")
    assert status == 200
    assert body == "This server has been visited 1 times.\n"
    assert headers["Content-Type"].startswith("text/plain")
    assert call("GET", "/")[2] == "This server has been visited 2 times.\n"


def test_healthz_does_not_count(call, store):
    for _ in range(3):
        status, _, body = call("GET", "/healthz")
        assert (status, body) == (200, "ok\n")
    assert store.count() == 0


def test_other_paths_are_404_and_do_not_count(call, store):
    for path in ("/favicon.ico", "/robots.txt", "/index.html"):
        assert call("GET", path)[0] == 404
    assert store.count() == 0


def test_head_and_other_methods_are_405_and_do_not_count(call, store):
    for method in ("HEAD", "POST", "PUT", "DELETE", "PATCH"):
        status, headers, _ = call(method, "/")
        assert status == 405, method
        assert "GET" in headers.get("Allow", ""), method
    assert store.count() == 0


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode()


def test_concurrent_requests_are_counted_exactly(served, store):
    before = store.count()
    with ThreadPoolExecutor(max_workers=50) as pool:
        bodies = list(pool.map(_get, [served + "/"] * 200))
    counts = sorted(int(body.split()[5]) for body in bodies)
    # Every request got its own number: no lost and no doubled increments.
    assert counts == list(range(before + 1, before + 201))
    assert store.count() == before + 200


def test_served_404_is_plain_text(served, store):
    try:
        _get(served + "/favicon.ico")
    except urllib.error.HTTPError as error:
        assert error.code == 404
        assert error.headers["Content-Type"].startswith("text/plain"), error.headers
        body = error.read().decode()
        assert "<" not in body, body
        assert body.count("\n") <= 1, body
    else:
        raise AssertionError("expected 404")
    assert store.count() == 0
