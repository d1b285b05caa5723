"""HTTP routes: only ``GET /`` counts."""

from __future__ import annotations

import bottle

from counter_app.store import VisitStore

TEXT = "text/plain; charset=utf-8"


def create_app(store: VisitStore) -> bottle.Bottle:
    app = bottle.Bottle()

    @app.get("/")
    def index() -> str:
        # Bottle answers HEAD with the GET handler unless told otherwise; a
        # HEAD must never count, so it is refused below before reaching here.
        bottle.response.content_type = TEXT
        bottle.response.set_header("Cache-Control", "no-store")
        return f"This server has been visited {store.record_visit()} times.\n"

    @app.route("/", method="HEAD")
    def index_head() -> None:
        raise bottle.HTTPError(405, "Method Not Allowed", Allow="GET")

    @app.get("/healthz")
    def healthz() -> str:
        store.count()  # raises (500) when the database cannot be read
        bottle.response.content_type = TEXT
        bottle.response.set_header("Cache-Control", "no-store")
        return "ok\n"

    def plain_error(error: bottle.HTTPError) -> str:
        bottle.response.content_type = TEXT
        return f"{error.status}\n"

    app.default_error_handler = plain_error
    return app
