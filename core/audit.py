"""The audit trail: one call per state change, inside the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from core.models import AuditEvent, User


def record(session: Session, verb: str, object_type: str, object_id: object = None, *,
           user: User | None = None, actor: str | None = None, ip: str | None = None,
           **details: Any) -> AuditEvent:
    """Add an audit event; it commits or rolls back with the change it describes."""
    event = AuditEvent(
        user_id=user.id if user else None,
        actor=actor or (user.email if user else "system"),
        verb=verb,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        details=details,
        ip=ip,
    )
    session.add(event)
    return event
