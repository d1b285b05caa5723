"""Requests per second and latency: the counter against a bare waitress
"hello" WSGI app served by the same Python, the same waitress settings (read
from the host's counter.env) and the same host, in the same run, at 1, 8, 32
and 128 connections, with Litestream replicating. The load is Debian's wrk,
run from the controller inside the app host's network namespace: requests go
over the host's loopback. Each point: a warm-up, then the measured run; the
two servers take turns, the one that goes first alternating. Afterwards the
count must hold every visit answered (plus at most one per connection in
flight when wrk stopped), and at 1 M visits more it must serve as fast."""

from __future__ import annotations

import re
import time

import lab

HELLO_PORT = 18080
MARK = "bench-hello"
CONNECTIONS = (1, 8, 32, 128)

# A probe server: argv[1] its mark (to stop it), [2] the app's environment
# file, [3] its port; the app's own Config (same waitress settings) and logging.
PROBE_PREAMBLE = r"""
import sys, waitress
from counter_app.__main__ import Config, configure_logging
env = {}
for line in open(sys.argv[2]):
    name, sep, value = line.strip().partition("=")
    if sep and not name.startswith("#"):
        env[name] = value
env.update(COUNTER_HOST="127.0.0.1", COUNTER_PORT=sys.argv[3])
config = Config.from_env(env)
"""

# The hello: a constant answer.
HELLO = (
    PROBE_PREAMBLE
    + r"""
BODY = b"Hello, world.\n"
def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"),
                              ("Content-Length", str(len(BODY)))])
    return [BODY]
configure_logging()
waitress.serve(hello, **config.waitress_settings())
"""
)

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _seconds(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def parse_wrk(out: str) -> dict:
    """wrk --latency's report as figures."""
    found = {
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _seconds(re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE).group(1)) * 1e3,
        "p99_ms": _seconds(re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE).group(1)) * 1e3,
    }
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    found["errors"] = (sum(map(int, socket.groups())) if socket else 0) + (
        int(non2xx.group(1)) if non2xx else 0
    )
    return found


def wrk(host: str, port: int, connections: int, seconds: int) -> dict:
    threads = min(2, connections)
    out = lab.in_netns(
        host,
        [
            "wrk",
            "--latency",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            f"http://127.0.0.1:{port}/",
        ],
        timeout=seconds + 60,
    ).stdout
    return parse_wrk(out)


class Probe:
    """A server of the bench's own on the app host, run by the app's Python
    as the app's account (outside the unit), stopped on exit."""

    def __init__(
        self,
        host: str,
        settings: lab.Settings,
        code: str,
        port: int,
        mark: str,
        args: tuple[str, ...] = (),
    ) -> None:
        self.host, self.settings, self.code = host, settings, code
        self.port, self.mark, self.args = port, mark, args

    def __enter__(self) -> Probe:
        self.stop()
        lab.run(
            [
                "docker",
                "exec",
                "-d",
                self.host,
                "runuser",
                "-u",
                self.settings.raw["counter_user"],
                "--",
                self.settings.venv_python,
                "-c",
                self.code,
                self.mark,
                self.settings.env_file,
                str(self.port),
                *self.args,
            ]
        )
        lab.wait_until(
            lambda: lab.visit(self.host, self.port)[0] == 200,
            timeout=30,
            what=f"{self.mark} up",
        )
        return self

    def stop(self) -> None:
        pattern = f"[{self.mark[0]}]{self.mark[1:]}"  # not the shell running pkill
        lab.sh(
            self.host,
            f"pkill -f '{pattern}' || true; "
            f"for i in $(seq 50); do pgrep -f '{pattern}' >/dev/null || exit 0; sleep 0.1; done",
        )

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _count(host: str, port: int) -> int:
    status, body = lab.visit(host, port)
    if status != 200:
        raise RuntimeError(f"{host}: GET / answered {status}: {body!r}")
    return lab.count_of(body)


def _pair(
    host: str, port: int, connections: int, seconds: int, warmup: int, counter_first: bool
) -> dict:
    order = [("counter", port), ("hello", HELLO_PORT)]
    if not counter_first:
        order.reverse()
    result: dict = {"connections": connections}
    answered = 0
    for name, target in order:
        warm = wrk(host, target, connections, warmup)
        result[name] = wrk(host, target, connections, seconds)
        if name == "counter":
            answered += (
                warm["requests"]
                - warm["errors"]
                + result[name]["requests"]
                - result[name]["errors"]
            )
    c, h = result["counter"], result["hello"]
    result["rps_ratio"] = round(c["rps"] / h["rps"], 3) if h["rps"] else None
    result["p99_ratio"] = round(c["p99_ms"] / h["p99_ms"], 3) if h["p99_ms"] else None
    result["_answered"] = answered
    return result


def _add_visits(host: str, settings: lab.Settings, visits: int) -> None:
    """Count `visits` more in one transaction, as the app's account, with the
    app's SQLite (APSW): the database stays one row whatever the count."""
    code = (
        "import apsw, sys\n"
        "c = apsw.Connection(sys.argv[1]); c.set_busy_timeout(5000)\n"
        "c.execute('UPDATE visits SET count = count + ? WHERE id = 1', (int(sys.argv[2]),))\n"
    )
    lab.run(
        [
            "docker",
            "exec",
            "-i",
            host,
            "runuser",
            "-u",
            settings.raw["counter_user"],
            "--",
            settings.venv_python,
            "-",
            settings.db,
            str(visits),
        ],
        input=code,
    )


def measure(
    settings: lab.Settings,
    host: str = lab.APP_HOSTS[0],
    seconds: int = 10,
    warmup: int = 3,
    million: int = 1_000_000,
) -> dict:
    port = settings.port
    points = []
    with Probe(host, settings, HELLO, HELLO_PORT, MARK):
        before = _count(host, port)
        answered = 0
        in_flight = 0
        for i, connections in enumerate(CONNECTIONS):
            point = _pair(host, port, connections, seconds, warmup, counter_first=i % 2 == 0)
            answered += point.pop("_answered")
            in_flight += 2 * connections
            points.append(point)
        time.sleep(1)
        after = _count(host, port)
        counted = after - before - 1
        exact = answered <= counted <= answered + in_flight
        # The same at a million visits more.
        _add_visits(host, settings, million)
        at_million = _pair(host, port, 32, seconds, warmup, counter_first=True)
        at_million.pop("_answered")
        base = next(p for p in points if p["connections"] == 32)
    return {
        "points": points,
        "count": {
            "before": before,
            "after": after,
            "counted": counted,
            "answered": answered,
            "in_flight_at_stops_max": in_flight,
            "exact": exact,
        },
        "million": {
            "visits_added": million,
            "at_start": base,
            "at_million": at_million,
            "rps_ratio_million_vs_start": round(
                at_million["counter"]["rps"] / base["counter"]["rps"], 3
            ),
        },
        "method": __doc__.split("\n\n")[0].replace("\n", " "),
    }


if __name__ == "__main__":
    import json
    import sys

    quick = "--quick" in sys.argv
    print(
        json.dumps(
            measure(lab.read_settings(), seconds=3 if quick else 10, warmup=1 if quick else 3),
            indent=2,
        )
    )
