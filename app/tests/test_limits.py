"""HTTP limits, over real sockets: what the app refuses before it reads it."""

from __future__ import annotations

import socket
import time

import pytest
import waitress.buffers

from counter_app.__main__ import MAX_BODY, MAX_HEADER, Config, ConfigError


@pytest.fixture
def no_spooling(monkeypatch) -> list[int]:
    """Fails the test when waitress would spool anything to a temporary file."""
    spooled: list[int] = []
    real = waitress.buffers.TempfileBasedBuffer.newfile

    def newfile(self):
        spooled.append(1)
        return real(self)

    monkeypatch.setattr(waitress.buffers.TempfileBasedBuffer, "newfile", newfile)
    yield spooled
    assert spooled == [], "waitress spooled a request to a temporary file"


def connect(port: int, timeout: float = 5) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def status(response: bytes) -> int:
    assert response.startswith(b"HTTP/1."), response[:200]
    return int(response.split(b" ", 2)[1])


def visit(port: int) -> int:
    with connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        response = read_until_closed(sock)
    assert status(response) == 200, response
    return int(response.split(b"\r\n\r\n", 1)[1].split()[5])


@pytest.mark.parametrize("length", [MAX_BODY, 10_000_000, 10**15])
def test_declared_large_body_is_refused_before_it_is_sent(serve, store, no_spooling, length):
    port = serve()
    with connect(port) as sock:
        started = time.monotonic()
        # Headers only: the body is never sent. waitress answers anyway, so it
        # decided on the declared length without waiting for (or reading) it.
        sock.sendall(f"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {length}\r\n\r\n".encode())
        response = read_until_closed(sock)
        elapsed = time.monotonic() - started
    assert status(response) == 413, response
    assert b"Connection: close" in response
    assert elapsed < 2, f"413 took {elapsed:.1f} s"
    assert store.count() == 0


def test_body_under_the_limit_on_get_is_read_and_counts_once(serve, store, no_spooling):
    port = serve()
    with connect(port) as sock:
        body = b"x" * (MAX_BODY - 1)
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        assert status(read_until_closed(sock)) == 200
    assert store.count() == 1


def test_declared_large_body_sent_anyway_is_cut_off(serve, store, no_spooling):
    port = serve()
    with connect(port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n")
        sent = 0
        try:
            for _ in range(10_000_000 // 65536):
                sent += sock.send(b"x" * 65536)
        except OSError:
            pass  # the server closed the connection: the body is refused
        response = read_until_closed(sock)
    # Whatever the kernel's buffers took, the server did not read 10 MB.
    assert sent < 10_000_000
    if response:  # the 413 may be lost to the reset of the unread rest
        assert status(response) == 413, response[:200]
    assert store.count() == 0


def test_chunked_body_is_refused_at_the_limit(serve, store, no_spooling):
    port = serve()
    with connect(port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"100\r\n" + b"x" * 256 + b"\r\n"
        for _ in range(MAX_BODY // 256 + 1):
            sock.sendall(chunk)
        response = read_until_closed(sock)
    assert status(response) == 413, response
    assert store.count() == 0


def test_chunk_size_line_without_end_is_refused_at_the_limit(serve, store, no_spooling):
    port = serve()
    with connect(port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        sock.sendall(b"f" * (MAX_BODY + 1))  # a chunk-size line that never ends
        response = read_until_closed(sock)
    assert status(response) == 413, response
    assert store.count() == 0


def test_expect_continue_reads_at_most_the_limit(serve, store, no_spooling):
    # With "Expect: 100-continue" waitress says continue before it checks the
    # length, then refuses once the limit is reached: never more than MAX_BODY
    # (plus one read) is taken in.
    port = serve()
    with connect(port) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
            b"Content-Length: 10000000\r\n\r\n"
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(b"x" * (MAX_BODY + 1))
        response = read_until_closed(sock)
    assert status(response) == 413, response
    assert store.count() == 0


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * MAX_HEADER + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X-Many: a\r\n" * (MAX_HEADER // 10) + b"\r\n",
        b"GET /" + b"a" * MAX_HEADER + b" HTTP/1.1\r\nHost: t\r\n\r\n",
        # Never ends: refused once the limit is reached, not held.
        b"GET / HTTP/1.1\r\nHost: t\r\nX-Endless: " + b"a" * (2 * MAX_HEADER),
    ],
    ids=["one-big-header", "many-headers", "long-path", "unterminated"],
)
def test_oversized_headers_are_refused(serve, store, no_spooling, request_bytes):
    port = serve()
    with connect(port) as sock:
        started = time.monotonic()
        sock.sendall(request_bytes)
        response = read_until_closed(sock)
    assert status(response) in (400, 431), response
    assert time.monotonic() - started < 2
    assert store.count() == 0
    assert visit(port) == 1, "the server still serves and counts"


def test_headers_just_under_the_limit_are_served(serve, store):
    port = serve()
    head = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Pad: "
    pad = b"a" * (MAX_HEADER - len(head) - 10)
    with connect(port) as sock:
        sock.sendall(head + pad + b"\r\n\r\n")
        assert status(read_until_closed(sock)) == 200
    assert store.count() == 1


def test_idle_connection_is_closed_after_the_timeout(serve, store):
    port = serve(COUNTER_IDLE_TIMEOUT="1")
    with connect(port, timeout=10) as idle, connect(port, timeout=10) as partial:
        partial.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")  # and then nothing
        started = time.monotonic()
        assert read_until_closed(idle) == b""
        assert read_until_closed(partial) == b""
        elapsed = time.monotonic() - started
    # The timeout, plus up to one cleanup interval and one loop turn.
    assert 0.9 < elapsed < 4, elapsed
    assert store.count() == 0, "the half-sent GET / did not count"


def test_idle_connections_at_the_limit_are_reaped_and_service_resumes(serve, store):
    # 10 is the smallest limit; waitress counts its listener and its wake-up
    # pipe in it, so 8 client connections fill it.
    port = serve(COUNTER_CONNECTION_LIMIT="10", COUNTER_IDLE_TIMEOUT="1")
    hogs = [connect(port) for _ in range(12)]
    try:
        started = time.monotonic()
        assert visit(port) == 1  # waits in the backlog until idle ones are closed
        assert time.monotonic() - started < 5
    finally:
        for sock in hogs:
            sock.close()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"COUNTER_IDLE_TIMEOUT": "0"}, "COUNTER_IDLE_TIMEOUT=0 is outside 1..3600"),
        ({"COUNTER_IDLE_TIMEOUT": "10s"}, "COUNTER_IDLE_TIMEOUT='10s' is not an integer"),
        ({"COUNTER_CONNECTION_LIMIT": "5"}, "COUNTER_CONNECTION_LIMIT=5 is outside 10..10000"),
    ],
)
def test_limit_settings_are_checked(env, message):
    with pytest.raises(ConfigError, match=message):
        Config.from_env(env)


def test_limits_are_set_explicitly():
    settings = Config.from_env({}).waitress_settings()
    assert settings["max_request_body_size"] == MAX_BODY == 1024
    assert settings["max_request_header_size"] == MAX_HEADER == 8192
    assert settings["channel_timeout"] == 10
    assert settings["connection_limit"] == 100
    assert settings["expose_tracebacks"] is False
    # A body the limit lets through (plus one read) stays in memory.
    assert MAX_BODY + settings["recv_bytes"] < settings["inbuf_overflow"]
