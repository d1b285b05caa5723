"""Restarts without refused connections: systemd's socket, and a draining stop.

systemd holds the listening socket (``counter.socket``) and passes it to the
app (socket activation). While the app restarts, the socket stays open in
systemd: the kernel queues new connections (up to the backlog) and the next
process accepts them. On SIGTERM or SIGINT the app therefore stops accepting
at once, answers what it has taken, and closes its connections in a way a
client can tell from a lost request: keep-alive clients get
``Connection: close`` on their next answer, idle ones are closed after
``IDLE_CLOSE`` seconds of silence.

This uses waitress internals, written against waitress 3.0.2 (pinned in
requirements.txt); check them when waitress moves:

- ``BaseWSGIServer``: ``_map`` (the wasyncore socket map it loops over),
  ``adj``, ``active_channels`` (fd -> HTTPChannel), ``del_channel()`` (from
  wasyncore.dispatcher: out of the map, no more accept()),
  ``channel_class``, ``task_dispatcher.shutdown()``, ``pull_trigger()``;
  ``run()`` is ``wasyncore.loop`` over ``_map``, run here one pass at a time.
- ``HTTPChannel``: ``task_class``, ``requests`` (taken, not yet answered),
  ``request`` (partly read), ``total_outbufs_len`` (not yet sent),
  ``last_activity``, ``will_close`` (what waitress's own idle timeout sets:
  the loop sends what is left, then closes).
- ``WSGITask``: ``build_response_header()`` (called when the answer's first
  byte is written) and ``set_close_on_finish()`` (adds ``Connection: close``,
  the channel closes once the answer is sent). An application may not set
  ``Connection`` itself (PEP 3333: hop-by-hop), hence the task subclass.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer
from waitress.task import WSGITask

log = logging.getLogger("counter_app")

LISTEN_FDS_START = 3  # sd_listen_fds(3): the first passed socket
DRAIN_SECONDS = 10  # at most, for the requests in progress at a stop
IDLE_CLOSE = 0.5  # a connection silent this long is closed during the drain
_DRAIN_POLL = 0.1


class SocketActivationError(RuntimeError):
    pass


def inherited_socket() -> socket.socket | None:
    """The listening socket systemd passed (LISTEN_PID is this process,
    LISTEN_FDS >= 1: fd 3), else None. Like ``sd_listen_fds(1)``, the
    variables are removed from the environment: they are not for children."""
    pid = os.environ.pop("LISTEN_PID", None)
    fds = os.environ.pop("LISTEN_FDS", None)
    os.environ.pop("LISTEN_FDNAMES", None)
    if not pid or not fds:
        return None
    try:
        for_us, count = int(pid) == os.getpid(), int(fds)
    except ValueError:
        raise SocketActivationError(f"LISTEN_PID={pid!r} LISTEN_FDS={fds!r}: not numbers") from None
    if not for_us or count < 1:
        return None
    try:
        sock = socket.socket(fileno=LISTEN_FDS_START)
    except OSError as error:
        raise SocketActivationError(f"fd {LISTEN_FDS_START} is not a socket: {error}") from None
    if (
        sock.family not in (socket.AF_INET, socket.AF_INET6)
        or sock.type != socket.SOCK_STREAM
        or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    ):
        what = " ".join(str(getattr(v, "name", v)) for v in (sock.family, sock.type))
        sock.detach()  # not ours to close
        raise SocketActivationError(f"fd {LISTEN_FDS_START} is not a listening TCP socket ({what})")
    sock.set_inheritable(False)
    if count > 1:
        log.warning("LISTEN_FDS=%d: only the first socket (fd 3) is used", count)
    return sock


class _Task(WSGITask):
    def build_response_header(self):
        # Draining: this answer is the connection's last, and says so.
        if self.channel.server.draining:
            self.set_close_on_finish()
        return super().build_response_header()


class _Channel(HTTPChannel):
    task_class = _Task


def serve_until_stopped(server: BaseWSGIServer, drain_seconds: float) -> None:
    """Run ``server`` until SIGTERM or SIGINT, then drain it and return."""
    stop: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stop.append(signum)
        server.pull_trigger()  # wake the loop (a write to its pipe, no lock)

    server.draining = False
    server.channel_class = _Channel
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    adj = server.adj
    while not stop:
        wasyncore.loop(adj.asyncore_loop_timeout, adj.asyncore_use_poll, server._map, count=1)
    log.info("received %s, shutting down", signal.Signals(stop[0]).name)
    _drain(server, time.monotonic() + drain_seconds)


def _drain(server: BaseWSGIServer, deadline: float) -> None:
    server.draining = True
    # No more accept(). Closing our descriptor of the listening socket does
    # not close the socket while systemd holds it: new connections wait in
    # its queue for the next process. (Never shutdown(): that would end it
    # for systemd too.) A socket the app bound itself is closed here.
    server.del_channel()
    server.socket.close()
    while server.active_channels and time.monotonic() < deadline:
        quiet_since = time.time() - IDLE_CLOSE
        for channel in list(server.active_channels.values()):
            if (
                not channel.requests
                and channel.request is None
                and not channel.total_outbufs_len
                and channel.last_activity < quiet_since
            ):
                channel.will_close = True
        wasyncore.loop(_DRAIN_POLL, server.adj.asyncore_use_poll, server._map, count=1)
    if server.active_channels:
        log.warning("%d connection(s) still open after the drain", len(server.active_channels))
    server.task_dispatcher.shutdown()
