import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import counter_app
from counter_app.__main__ import Config, ConfigError

# The app as the tests import it (the source beside them), for subprocesses too.
SRC = str(Path(counter_app.__file__).parent.parent)


def _env(**values: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path, **values)


def test_config_defaults():
    config = Config.from_env({})
    assert (config.host, config.port, config.threads) == ("127.0.0.1", 8080, 100)
    assert (config.ack_after_replication, config.ack_timeout) == (False, 10)


def test_acknowledge_after_replication_is_a_switch():
    env = {"COUNTER_LITESTREAM_SOCKET": "/run/litestream/litestream.sock"}
    for word, value in (("1", True), ("yes", True), ("0", False), ("false", False)):
        config = Config.from_env(dict(env, COUNTER_ACK_AFTER_REPLICATION=word))
        assert config.ack_after_replication is value


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"COUNTER_PORT": "http"}, "COUNTER_PORT='http' is not an integer"),
        ({"COUNTER_PORT": "70000"}, "COUNTER_PORT=70000 is outside 1..65535"),
        ({"COUNTER_THREADS": "0"}, "COUNTER_THREADS=0 is outside 1..256"),
        ({"COUNTER_ACK_AFTER_REPLICATION": "maybe"}, "'maybe' is not a boolean"),
        ({"COUNTER_ACK_TIMEOUT": "0"}, "COUNTER_ACK_TIMEOUT=0 is outside 1..300"),
        (
            {"COUNTER_ACK_AFTER_REPLICATION": "true"},
            "COUNTER_ACK_AFTER_REPLICATION needs Litestream's control socket",
        ),
    ],
)
def test_config_errors_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        Config.from_env(env)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serves_and_stops_cleanly_on_sigterm(tmp_path):
    port = _free_port()
    env = _env(COUNTER_DB=str(tmp_path / "c.db"), COUNTER_PORT=str(port))
    proc = subprocess.Popen(
        [sys.executable, "-m", "counter_app"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        body = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    body = r.read().decode()
                break
            except OSError:
                time.sleep(0.1)
        assert body == "This server has been visited 1 times.\n"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "listening on a socket it bound" in stderr
    assert "received SIGTERM, shutting down" in stderr
    assert "stopped" in stderr


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"COUNTER_PORT": "nope"}, "COUNTER_PORT='nope' is not an integer"),
        ({"COUNTER_IDLE_TIMEOUT": "0"}, "COUNTER_IDLE_TIMEOUT=0 is outside 1..3600"),
        ({"COUNTER_CONNECTION_LIMIT": "many"}, "COUNTER_CONNECTION_LIMIT='many' is not an integer"),
    ],
)
def test_bad_config_exits_2_with_a_message(tmp_path, setting, message):
    env = _env(COUNTER_DB=str(tmp_path / "c.db"), **setting)
    proc = subprocess.run(
        [sys.executable, "-m", "counter_app"], env=env, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2
    assert message in proc.stderr
