"""What the console's action pages show besides forms: the area, SMS sizes, and the live data
(deliveries, calls, tips) the live page polls."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import url_for
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from core.models import Action, CallDirection, CallRecord, Language, Meldkamer, Tip
from outbound.progress import OPEN, Progress
from outbound.sms import SmsSize, sms_size
from outbound.templates import alert_text
from web.console_forms import LABELS
from web.i18n import translate

LOCAL = ZoneInfo("Europe/Amsterdam")
LATEST_CALLS = 5
LATEST_TIPS = 50


def area_of_form(action: Action) -> dict[str, Any]:
    """The action's area as the read-only map takes it."""
    if action.national:
        return {"national": True}
    if action.polygon is not None:
        return {"polygon": json.dumps(action.polygon)}
    return {"lat": action.center_lat, "lon": action.center_lon, "radius_m": action.radius_m}


def sms_sizes(action: Action, free_number: str) -> list[tuple[str, str, SmsSize]]:
    """Per language: the alert's SMS text and its size in parts and characters."""
    return [(language.value, text, sms_size(text)) for language in Language
            for text in [alert_text(action, language, free_number)]]


def duration(seconds: float) -> str:
    """SECONDS the way a person says it: 45 s, 3 min 20 s, 2 h 5 min."""
    whole = int(round(seconds))
    if whole < 1:
        return translate("minder dan een seconde")
    if whole < 60:
        return translate("{s} s", s=whole)
    if whole < 3600:
        return translate("{m} min {s} s", m=whole // 60, s=whole % 60)
    return translate("{h} u {m} min", h=whole // 3600, m=whole % 3600 // 60)


def local_time(moment: datetime | None) -> str:
    """A moment as Dutch clock time: 23-11 14:05:09."""
    return moment.astimezone(LOCAL).strftime("%d-%m %H:%M:%S") if moment else ""


def masked(number: str | None) -> str:
    """A caller's number with all but the last three digits hidden."""
    digits = "".join(ch for ch in number or "" if ch.isdigit())
    if len(digits) < 4:
        return translate("onbekend")
    return "•" * (len(digits) - 3) + digits[-3:]


def live_data(session: Session, action: Action, result: Progress, *,
              tips_allowed: bool) -> dict[str, Any]:
    """Everything the live page redraws: one JSON document, every text already translated."""
    channels: dict[str, dict[str, Any]] = {}
    for channel, by_status in result.counts.items():
        waiting = sum(n for status, n in by_status.items() if status in OPEN)
        channels[channel.value] = {
            "counts": {status.value: n for status, n in by_status.items()}, "open": waiting,
            "rate": round(result.rate_per_second.get(channel, 0.0), 1),
            "remaining": _left(result.remaining_seconds.get(channel, 0.0), waiting)}
    waiting = sum(info["open"] for info in channels.values())
    return {"action_id": action.id, "status": action.status.value,
            "status_label": translate(LABELS["status"][action.status.value]),
            "total": result.total, "open": waiting, "channels": channels,
            "forecast_seconds": round(result.forecast_seconds, 1),
            "forecast": _left(result.forecast_seconds, waiting),
            "calls": _calls(session, action.id),
            "tips": _tips(session, action.id, allowed=tips_allowed)}


def _left(seconds: float, waiting: int) -> str:
    """The time left, or "done" when nothing waits to be sent any more."""
    return duration(seconds) if waiting else translate("klaar")


def _calls(session: Session, action_id: int) -> dict[str, Any]:
    """Calls to a meldkamer about this action: dialled in, or 1 pressed in the voice message."""
    about = (CallRecord.action_id == action_id,
             or_(CallRecord.direction == CallDirection.INBOUND,
                 CallRecord.meldkamer_id.is_not(None)))
    total, connected = session.execute(
        select(func.count(), func.count(CallRecord.connected_at)).where(*about)).one()
    latest = session.execute(
        select(CallRecord.id, CallRecord.started_at, CallRecord.caller, CallRecord.outcome,
               Meldkamer.name)
        .outerjoin(Meldkamer, Meldkamer.id == CallRecord.meldkamer_id).where(*about)
        .order_by(CallRecord.started_at.desc(), CallRecord.id.desc()).limit(LATEST_CALLS))
    return {"total": total, "connected": connected,
            "latest": [{"id": row.id, "at": local_time(row.started_at),
                        "caller": masked(row.caller), "meldkamer": row.name or "",
                        "outcome": translate(LABELS["call"].get(row.outcome or "", "Onbekend"))}
                       for row in latest]}


def _tips(session: Session, action_id: int, *, allowed: bool) -> dict[str, Any]:
    """The latest tips, text and photo link, for centralists; anyone else only their number."""
    total = session.scalar(select(func.count()).where(Tip.action_id == action_id)) or 0
    if not allowed:
        return {"total": total, "latest": None}
    tips = session.scalars(select(Tip).where(Tip.action_id == action_id)
                           .order_by(Tip.received_at.desc(), Tip.id.desc()).limit(LATEST_TIPS))
    return {"total": total,
            "latest": [{"id": tip.id, "at": local_time(tip.received_at), "text": tip.text,
                        "source": tip.source,
                        "photo_url": url_for("console.tip_photo", tip_id=tip.id)
                        if tip.media_path else None}
                       for tip in tips]}
