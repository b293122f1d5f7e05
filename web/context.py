"""What views reach: the app's Runtime and the request's database session (and CSRF).

Kept apart from the app factory (`web.create_app`), which imports every blueprint: the
blueprints import this module, never the package, so no import goes round in a circle.
"""

from __future__ import annotations

from flask import current_app, g
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import Session, sessionmaker

from outbound.runtime import Runtime

csrf = CSRFProtect()


def runtime() -> Runtime:
    """The Runtime of the current app."""
    return current_app.extensions["runtime"]


def db(write: bool = False) -> Session:
    """The request's database session; committed or rolled back when the request ends.

    A view that writes asks with WRITE=True before anything else touches the database.
    """
    if "db" not in g:
        rt = runtime()
        g.db = (rt.writer if write else rt.sessions)()
    return g.db


def writer() -> sessionmaker[Session]:
    """Sessions for a view that commits its own transactions (on SQLite they take the write
    lock when they begin)."""
    return runtime().writer


def close_session(error: BaseException | None) -> None:
    """The request's end: its session committed, or rolled back after an error."""
    session = g.pop("db", None)
    if session is None:
        return
    try:
        if error is None:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()
