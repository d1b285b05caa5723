"""HTTP routes: only ``GET /`` counts."""

from __future__ import annotations

import bottle

from counter_app.replicated_ack import NotReplicated, ReplicationGate
from counter_app.replication import ReplicationMonitor
from counter_app.store import VisitStore

TEXT = "text/plain; charset=utf-8"


def create_app(
    store: VisitStore,
    replication: ReplicationMonitor | None = None,
    gate: ReplicationGate | None = None,
) -> bottle.Bottle:
    """The routes. ``replication`` (None: not checked) makes /healthz a
    readiness check that fails while writes are not being replicated;
    ``gate``: the store acknowledges visits after replication (readiness
    says so)."""
    app = bottle.Bottle()

    # The counting page is the hot path: no plugin (it returns bytes, which
    # Bottle passes on as they are, without looking up a charset to encode a
    # str), and its headers set once, Content-Length included.
    @app.get("/", skip=True)
    def index() -> bytes:
        # Bottle answers HEAD with the GET handler unless told otherwise; a
        # HEAD must never count, so it is refused below before reaching here.
        set_header = bottle.response.set_header
        try:
            body = b"This server has been visited %d times.\n" % store.record_visit()
        except NotReplicated as error:
            # Never a 200 for a visit the replica does not hold.
            bottle.response.status = 503
            set_header("Content-Type", TEXT)
            set_header("Cache-Control", "no-store")
            set_header("Retry-After", "1")
            return f"{error}\n".encode()
        set_header("Content-Type", TEXT)
        set_header("Cache-Control", "no-store")
        set_header("Content-Length", str(len(body)))
        return body

    @app.route("/", method="HEAD")
    def index_head() -> None:
        raise bottle.HTTPError(405, "Method Not Allowed", Allow="GET")

    @app.get("/livez")
    def livez() -> str:
        # Liveness: the process serves and reads its database, whatever the
        # replica store does.
        store.count()  # raises (500) when the database cannot be read
        bottle.response.content_type = TEXT
        bottle.response.set_header("Cache-Control", "no-store")
        return "ok\n"

    @app.get("/healthz")
    def healthz() -> str:
        # Readiness (load balancers, the rolling deploy): also red, saying
        # why, while Litestream is down or the replica falls behind.
        store.count()
        bottle.response.content_type = TEXT
        bottle.response.set_header("Cache-Control", "no-store")
        if replication is not None:
            verdict = replication.verdict()
            if not verdict.ok:
                bottle.response.status = 503
                return verdict.reason + "\n"
        if gate is not None:
            state = gate.state()
            return (
                f"ok\nvisits are acknowledged once the replica holds them "
                f"(last wait {state.last_wait:.3f} s, {state.waiting} waiting, "
                f"bound {gate.timeout:g} s)\n"
            )
        return "ok\n"

    def plain_error(error: bottle.HTTPError) -> str:
        bottle.response.content_type = TEXT
        return f"{error.status}\n"

    app.default_error_handler = plain_error
    return app
