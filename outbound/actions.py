"""Actions as the console, the API and the CLI see them: create a validated draft, start it,
end it. One place decides what a valid action is and queues what starting or ending wrote."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.errors import BurgernetError
from core.geo import Area, AreaError, Polygon, parse_area
from core.models import (
    Action,
    ActionKind,
    ActionStatus,
    Meldkamer,
    Organisation,
    Outcome,
    Urgency,
    User,
)
from core.permissions import (
    NON_URGENT_KINDS,
    Actor,
    NotPermitted,
    check_area,
    may_create,
    may_manage,
    meldkamer_code,
)
from core.texts import text_problem
from outbound.fanout import ActionError, StartResult, activate_action, start_action
from outbound.feedback import Ending, end_action
from outbound.queues import enqueue, enqueue_outbox, schedule

TITLE_MAX = 200
TEXT_MAX = 2000


class ActionInvalid(BurgernetError, ValueError):
    """A draft that cannot be stored; ERRORS maps each field to one Dutch message for the
    form, DETAILS to the exact technical reason where there is one (for the CLI and API)."""

    error_id = "invalid_action"

    def __init__(self, errors: dict[str, str], details: dict[str, str] | None = None) -> None:
        self.errors = errors
        self.details = details or {}
        super().__init__("; ".join(f"{name}: {self.details.get(name, message)}"
                                   for name, message in errors.items()))


@dataclass
class ActionDraft:
    """What a centralist or the dispatch system fills in; checked by `create_action`."""

    kind: str
    title_nl: str
    meldkamer_code: str
    urgency: str | None = None
    title_en: str | None = None
    description_nl: str = ""
    description_en: str | None = None
    instruction_nl: str = ""
    instruction_en: str | None = None
    lat: float | None = None
    lon: float | None = None
    radius_m: float | None = None
    polygon: dict[str, Any] | str | None = None
    national: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def default_urgency(kind: ActionKind) -> Urgency:
    return Urgency.NORMAL if kind in NON_URGENT_KINDS else Urgency.URGENT


def create_action(session: Session, draft: ActionDraft, who: Actor) -> Action:
    """Store DRAFT as a draft action of WHO's organisation. Raises NotPermitted when WHO may
    not make it (core.permissions: kind, national, urgency, meldkamer, area), else
    ActionInvalid naming every wrong field at once."""
    errors: dict[str, str] = {}
    details: dict[str, str] = {}
    kind = _choice(ActionKind, draft.kind, "kind", "Kies een soort actie.", errors)
    urgency = (_choice(Urgency, draft.urgency, "urgency", "Kies een urgentie.", errors)
               if draft.urgency else (default_urgency(kind) if kind else None))
    national = bool(draft.national)
    if kind is not None:
        may_create(who, kind, national, urgency)
    code = meldkamer_code(who, draft.meldkamer_code)
    texts = {name: (getattr(draft, name) or "").strip() for name in
             ("title_nl", "title_en", "description_nl", "description_en",
              "instruction_nl", "instruction_en")}
    if not texts["title_nl"]:
        errors["title_nl"] = "Vul een titel in."
    for name, value in texts.items():
        title = name.startswith("title")
        limit = TITLE_MAX if title else TEXT_MAX
        if len(value) > limit:
            errors[name] = f"Te lang: hoogstens {limit} tekens."
        elif problem := text_problem(value, one_line=title):
            errors[name] = problem
    meldkamer = session.scalar(select(Meldkamer).where(Meldkamer.code == code))
    if meldkamer is None:
        errors["meldkamer"] = "Kies een bestaande meldkamer."
    parsed: Area | None = None
    if national:
        if kind is not None and kind != ActionKind.AMBER:
            errors["area"] = "Alleen een AMBER Alert kan landelijk zijn."
    else:
        try:
            parsed = _parse_area(draft)
        except (AreaError, json.JSONDecodeError) as exc:
            errors["area"] = _area_message(exc)
            details["area"] = str(exc)
    if errors:
        raise ActionInvalid(errors, details)
    assert kind is not None and urgency is not None and meldkamer is not None
    check_area(session, who, parsed)
    organisation = session.get(Organisation, who.organisation_id)
    action = Action(kind=kind, urgency=urgency, national=national, meldkamer=meldkamer,
                    organisation=organisation, creator=who.user,
                    **{name: value or (None if name.endswith("_en") else "")
                       for name, value in texts.items()}, **_area_columns(parsed))
    session.add(action)
    session.flush()
    audit.record(session, "create", "action", action.id, user=who.user, actor=who.name,
                 kind=kind.value, urgency=urgency.value, national=national)
    return action


def _parse_area(draft: ActionDraft) -> Area:
    polygon = draft.polygon
    if isinstance(polygon, str):
        polygon = json.loads(polygon) if polygon.strip() else None
    return parse_area(lat=None if polygon else draft.lat, lon=None if polygon else draft.lon,
                      radius_m=None if polygon else draft.radius_m, geojson=polygon)


def _area_columns(area: Area | None) -> dict[str, Any]:
    if area is None:
        return {}
    if isinstance(area, Polygon):
        return {"polygon": area.geojson}
    return {"center_lat": area.lat, "center_lon": area.lon, "radius_m": area.radius_m}


def _choice(enum: Any, value: str | None, name: str, message: str,
            errors: dict[str, str]) -> Any:
    try:
        return enum(value)
    except ValueError:
        errors[name] = message
        return None


#: What the form says for each part of an area that is wrong (AreaError.part).
AREA_MESSAGES = {
    "centre": "Klik op de kaart voor het midden van het gebied en geef een straal.",
    "radius": "Geef een straal van meer dan 0 meter.",
    "radius_too_large": "De straal is te groot: hoogstens 300 km.",
    "polygon": "Het getekende gebied is geen geldige veelhoek.",
}


def _area_message(exc: Exception) -> str:
    return AREA_MESSAGES[exc.part if isinstance(exc, AreaError) else "polygon"]


def start_and_queue(writer: sessionmaker[Session], connection: redis.Redis, action_id: int, *,
                    now: datetime, who: Actor | None = None, user: User | None = None,
                    actor: str | None = None) -> StartResult:
    """Start a draft action, queueing each outbox chunk as it is written. With WHO, it starts
    only if WHO may start it (core.permissions.may_start; NotPermitted otherwise)."""
    return start_action(writer, action_id, now=now, user=user, actor=actor, who=who,
                        dispatch=lambda batches: enqueue(connection, batches))


def start_in_background(writer: sessionmaker[Session], connection: redis.Redis,
                        action_id: int, *, now: datetime, who: Actor | None = None,
                        user: User | None = None, actor: str | None = None) -> bool:
    """Activate a draft action now and have a worker write and queue its outbox; False when
    it was not a draft (started before: nothing is done twice). For the web and the API,
    which must answer at once even for a national alert."""
    if not activate_action(writer, action_id, now=now, user=user, actor=actor, who=who):
        return False
    enqueue_outbox(connection, action_id)
    return True


def start_for_request(writer: sessionmaker[Session], connection: redis.Redis, action_id: int, *,
                      now: datetime, who: Actor) -> bool:
    """How the console, the municipal pages and the API start an action for WHO; False when
    it was started before, NotPermitted when WHO may not start it.

    A regional action's outbox is written right here, chunk by chunk, so its first messages
    leave within a second even while every worker is busy sending; a national alert's million
    rows are written by a worker, so the request answers at once.
    """
    with writer() as session:
        national = require_action(session, action_id).national
    if national:
        return start_in_background(writer, connection, action_id, now=now, who=who)
    return start_and_queue(writer, connection, action_id, now=now, who=who).started


def end_and_queue(sessions: sessionmaker[Session], connection: redis.Redis, action_id: int,
                  outcome: Outcome | str, text: str | None, *, now: datetime,
                  who: Actor | None = None, user: User | None = None,
                  actor: str | None = None) -> Ending:
    """End an active action and queue its result messages (those in quiet hours are held).
    With WHO, only an action WHO may manage (core.permissions.may_manage)."""
    try:
        outcome = Outcome(outcome)
    except ValueError:
        raise ActionInvalid({"outcome": "Kies een afloop."}) from None
    if text is not None and len(text) > TEXT_MAX:
        raise ActionInvalid({"outcome_text": f"Te lang: hoogstens {TEXT_MAX} tekens."})
    if text is not None and (problem := text_problem(text, one_line=False)):
        raise ActionInvalid({"outcome_text": problem})
    if who is not None:
        user, actor = who.user, who.name
    with sessions() as session, session.begin():
        if who is not None:
            may_manage(who, require_action(session, action_id))
        ending = end_action(session, action_id, outcome, text, now=now, user=user, actor=actor)
    enqueue(connection, ending.batches)
    with sessions() as session:
        schedule(connection, session, ending.held)
    return ending


def discard_draft(session: Session, action_id: int, who: Actor, **details: Any) -> None:
    """Throw away a draft that WHO may manage (core.permissions.may_manage: its own
    organisation's, of a kind it may make); ActionError when it is no draft (any more). The
    caller's transaction commits it, with its audit event (DETAILS added)."""
    action = session.get(Action, action_id, with_for_update=True)
    if action is None or action.status != ActionStatus.DRAFT:
        raise ActionError(f"action {action_id} is not a draft")
    may_manage(who, action)
    audit.record(session, "discard", "action", action.id, user=who.user, actor=who.name,
                 kind=action.kind.value, **details)
    session.delete(action)


def require_action(session: Session, action_id: int) -> Action:
    action = session.get(Action, action_id)
    if action is None:
        raise ActionError(f"no action {action_id}")
    return action


__all__ = ["ActionDraft", "ActionError", "ActionInvalid", "ActionStatus", "NotPermitted",
           "create_action", "default_urgency", "discard_draft", "end_and_queue", "require_action",
           "start_and_queue", "start_for_request", "start_in_background"]
