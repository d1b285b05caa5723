"""A page-view counter stored in SQLite, made to run beside Litestream."""

from counter_app.store import VisitStore
from counter_app.web import create_app

__all__ = ["VisitStore", "create_app"]
