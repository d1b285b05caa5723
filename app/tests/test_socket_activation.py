"""Socket activation and the draining stop: restarts lose no request.

The tests play systemd: they hold a listening socket and start the app with
it at fd 3 (LISTEN_PID, LISTEN_FDS), as ``counter.socket`` does.
"""

import contextlib
import http.client
import itertools
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import apsw
import pytest

import counter_app
from counter_app.serving import SocketActivationError, inherited_socket

SRC = str(Path(counter_app.__file__).parent.parent)

# What systemd does between fork and exec: the socket to fd 3, LISTEN_PID set
# to the pid of the process that is exec'd (this one).
LAUNCHER = """
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ["LISTEN_PID"] = str(os.getpid())
os.environ["LISTEN_FDS"] = "1"
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""


def _env(**values: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path, **values)


def _activated(sock: socket.socket, args: list[str], env: dict[str, str], **kw):
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(sock.fileno()), *args],
        pass_fds=[sock.fileno()],
        env=env,
        **kw,
    )


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


@pytest.fixture
def no_listen_env(monkeypatch):
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_without_systemd_there_is_no_socket(no_listen_env):
    assert inherited_socket() is None


def test_a_socket_for_another_process_is_not_taken_and_not_passed_on(no_listen_env):
    no_listen_env.setenv("LISTEN_PID", str(os.getpid() + 1))
    no_listen_env.setenv("LISTEN_FDS", "1")
    no_listen_env.setenv("LISTEN_FDNAMES", "counter.socket")
    assert inherited_socket() is None
    assert not {"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} & set(os.environ)


def test_garbled_variables_are_an_error(no_listen_env):
    no_listen_env.setenv("LISTEN_PID", "systemd")
    no_listen_env.setenv("LISTEN_FDS", "1")
    with pytest.raises(SocketActivationError, match="not numbers"):
        inherited_socket()


def test_takes_the_listening_socket_at_fd_3():
    probe = (
        "import os; from counter_app.serving import inherited_socket; s = inherited_socket(); "
        "print(s.fileno(), s.getsockname()[1], os.get_inheritable(3), "
        "[n for n in os.environ if n.startswith('LISTEN_')])"
    )
    with _listener() as listener:
        proc = _activated(listener, ["-c", probe], _env(), stdout=subprocess.PIPE, text=True)
        out, _ = proc.communicate(timeout=30)
        port = listener.getsockname()[1]
    assert proc.returncode == 0
    assert out.split() == ["3", str(port), "False", "[]"]


def _udp() -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


def _unlistened() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_udp, "fd 3 is not a listening TCP socket"),
        (_unlistened, "fd 3 is not a listening TCP socket"),
        (lambda: open(os.devnull), "fd 3 is not a socket"),  # noqa: SIM115
    ],
)
def test_a_wrong_fd_3_exits_2_with_a_message(tmp_path, make, message):
    with make() as wrong:
        proc = _activated(
            wrong,
            ["-m", "counter_app"],
            _env(COUNTER_DB=str(tmp_path / "c.db")),
            stderr=subprocess.PIPE,
            text=True,
        )
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 2, stderr
    assert message in stderr


# The drill: the app under load, stopped with SIGTERM and started again on
# the same socket, three times. Not one request may fail.

VISITED = re.compile(rb"This server has been visited (\d+) times\.\n")


class Load:
    """Clients of two kinds: a new connection per request, and keep-alive
    connections that are reused until the server says ``Connection: close``
    or has closed them while they were idle (seen before sending). Anything
    else that goes wrong with a request that was sent is a failure."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.counts: list[int] = []
        self.failures: list[str] = []
        self.told_to_close = 0  # keep-alive answers that said Connection: close
        self.closed_idle = 0  # keep-alive connections the server closed while idle
        self.threads = [
            *(threading.Thread(target=self.new_connections) for _ in range(8)),
            *(threading.Thread(target=self.keep_alive, args=(p,)) for p in (0, 0, 0.05, 1.2)),
        ]

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def answered(self) -> int:
        with self.lock:
            return len(self.counts)

    def _get(self, conn: http.client.HTTPConnection) -> http.client.HTTPResponse | None:
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as error:
            conn.close()
            with self.lock:
                self.failures.append(repr(error))
            return None
        match = VISITED.fullmatch(body)
        with self.lock:
            if response.status == 200 and match:
                self.counts.append(int(match[1]))
            else:
                self.failures.append(f"{response.status} {body!r}")
        return response

    def new_connections(self) -> None:
        while not self.stop.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
            self._get(conn)
            conn.close()

    def keep_alive(self, pause: float) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        while not self.stop.is_set():
            if conn.sock is not None and select.select([conn.sock], [], [], 0)[0]:
                conn.close()  # end of file: closed by the server while idle
                with self.lock:
                    self.closed_idle += 1
            response = self._get(conn)
            if response is not None and response.will_close:
                # http.client has closed it and connects anew for the next.
                with self.lock:
                    self.told_to_close += 1
            time.sleep(pause)
        conn.close()


def _start(listener: socket.socket, env: dict[str, str], log: Path):
    with log.open("w") as stderr:
        return _activated(listener, ["-m", "counter_app"], env, stderr=stderr)


def _stop(proc: subprocess.Popen, log: Path) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=20) == 0, log.read_text()
    finally:
        proc.kill()
    return log.read_text()


def test_restarts_under_load_lose_no_request(tmp_path):
    db = tmp_path / "c.db"
    with contextlib.ExitStack() as stack:
        listener = stack.enter_context(_listener())
        port = listener.getsockname()[1]
        # The app's own port setting is the one systemd holds: binding it
        # would fail, so the app must take the socket it is passed.
        env = _env(COUNTER_DB=str(db), COUNTER_PORT=str(port))
        proc = _start(listener, env, tmp_path / "app0.log")
        stack.callback(lambda: proc.kill())
        load = stack.enter_context(Load(port))
        # On a failure, no app is left to answer: clients waiting in the
        # queue are reset instead of waiting for their timeout.
        stack.callback(listener.close)
        answered = [0]
        for restart in range(1, 4):
            time.sleep(1)
            answered.append(load.answered())
            log = _stop(proc, tmp_path / f"app{restart - 1}.log")
            assert "listening on the socket systemd passed" in log
            assert "received SIGTERM, shutting down" in log
            assert "still open after the drain" not in log
            proc = _start(listener, env, tmp_path / f"app{restart}.log")
        time.sleep(1)
        load.__exit__()
        answered.append(load.answered())
        _stop(proc, tmp_path / "app3.log")
    assert load.failures == []
    # Every process answered, and every visit answered was counted once:
    # the answers are 1..N, and N is what the database holds.
    assert all(a < b for a, b in itertools.pairwise(answered)), answered
    assert sorted(load.counts) == list(range(1, len(load.counts) + 1))
    conn = apsw.Connection(str(db))
    assert conn.execute("SELECT count FROM visits").fetchone()[0] == len(load.counts)
    conn.close()
    # Both ways of ending a keep-alive connection were taken.
    assert load.told_to_close > 0
    assert load.closed_idle > 0
