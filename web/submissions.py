"""A form that creates something is sent at most once: a new-action form carries a submission
id made when the form was shown, and a draft created from it keeps that id in its audit event
("create"), in the same transaction. The same form sent again (a double click, a browser that
resends after a web process died mid-request, a response that never arrived) finds the draft
it made instead of making a second one.

The audit trail rather than Redis: the id is written in the transaction that creates the draft,
so no crash can leave a draft without it, and it needs no migration. Concurrent copies of one
form wait for each other on the user's row (SQLite's writer sessions take the lock anyway).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import AuditEvent, User

#: How long a sent form is remembered: longer than any page stays open before it is resent.
REMEMBERED = timedelta(days=1)
_ID = re.compile(r"[0-9a-f]{32}")


def new_submission() -> str:
    """The id a form gets when it is shown."""
    return uuid.uuid4().hex


def valid(submission: str | None) -> str | None:
    """SUBMISSION if it is one of ours; a form without one (or with garbage) is not guarded."""
    return submission if submission and _ID.fullmatch(submission) else None


def earlier_draft(session: Session, user_id: int, submission: str, now: datetime) -> int | None:
    """The action USER_ID already created from SUBMISSION, if any. Takes the user's row lock
    first, so that a second copy of the form waits until the first has committed."""
    session.execute(select(User.id).where(User.id == user_id).with_for_update())
    found = session.scalar(
        select(AuditEvent.object_id)
        .where(AuditEvent.verb == "create", AuditEvent.object_type == "action",
               AuditEvent.user_id == user_id, AuditEvent.at >= now - REMEMBERED,
               AuditEvent.details["submission"].as_string() == submission)
        .order_by(AuditEvent.id).limit(1))
    return int(found) if found is not None else None


def remember(session: Session, action_id: int, submission: str) -> None:
    """Keep SUBMISSION in the audit event of the creation of ACTION_ID (in SESSION)."""
    event = session.scalar(
        select(AuditEvent).where(AuditEvent.verb == "create", AuditEvent.object_type == "action",
                                 AuditEvent.object_id == str(action_id)))
    assert event is not None, "create_action records its audit event"
    event.details = {**event.details, "submission": submission}
