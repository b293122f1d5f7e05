"""The JSON API for dispatch systems: create, start, end and follow actions with a token.

Each handler checks the request against the OpenAPI document, loads the action within the
token's organisation, calls the same action service as the console and the CLI, and dumps
the result. Every state change is written to the audit trail as "api:<token name>".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, NoReturn

import redis
from flask import Blueprint, Response, g, jsonify, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.routing import RequestRedirect

from core import audit
from core.addresses import client_network
from core.db import transaction
from core.models import (
    Action,
    ActionStatus,
    CallDirection,
    CallRecord,
    Organisation,
    Tip,
)
from core.permissions import Actor, NotPermitted, actor_for_token
from core.tokens import TokenIdentity, needs_touch, touch_token, verify_token
from outbound.actions import (
    ActionDraft,
    ActionInvalid,
    create_action,
    end_and_queue,
    start_for_request,
)
from outbound.progress import progress
from routing.places import DEFAULT_LIMIT, search_places
from web import api_contract as contract
from web import attempts
from web.api_contract import ApiError
from web.api_idempotency import Idempotency
from web.auth import record_refusal
from web.context import csrf, runtime, writer
from web.places import places_json

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)

#: Failed authentications per client address per minute; further failures get 429.
FAILURES_PER_IP = 20
PUBLIC_ENDPOINTS = {"api.openapi"}
NOT_ACTIVE = {ActionStatus.DRAFT: "Deze actie is nog niet gestart; alleen een actieve actie "
                                  "kan eindigen.",
              ActionStatus.ENDED: "Deze actie is al beëindigd."}
REALM = 'Bearer realm="burgernet"'


# --- plumbing: errors, authentication, sessions ---------------------------------------------

@bp.errorhandler(Exception)
def _error(exc: Exception) -> Response:
    if isinstance(exc, NotPermitted) and "api_token" in g:
        record_refusal(exc, (request.view_args or {}).get("action_id"), actor=_token().actor)
    return contract.error_response(contract.as_api_error(exc))


@bp.before_app_request
def _routing_error() -> Response | None:
    """An unknown path or method under /api/v1 answers in the API's JSON shape, not HTML."""
    exc = request.routing_exception
    if exc is None or isinstance(exc, RequestRedirect) \
            or not (request.path + "/").startswith(f"{bp.url_prefix}/"):
        return None
    return contract.error_response(contract.as_api_error(exc))


@bp.before_request
def _authenticate() -> None:
    """Bearer token → the organisation it acts for. A valid token always passes: a key holds
    256 random bits, so checking it first helps no guesser, and nobody else's bad tokens can
    lock a dispatch system out. Failures are counted per client address; past the limit, the
    rest of the minute's failures from that address get 429 instead of 401 (and are not
    audited one by one)."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    failures = f"api-fail:ip:{client_network(request.remote_addr)}"
    scheme, _, plain = request.headers.get("Authorization", "").partition(" ")
    plain = plain.strip() if scheme.lower() == "bearer" else ""
    identity = None
    if plain:
        with runtime().sessions() as session:
            identity = verify_token(session, plain)
    if identity is None:
        if attempts.too_many(runtime().redis, {failures: FAILURES_PER_IP}):
            raise ApiError(429, "too_many_failures",
                           "Te veel mislukte aanmeldingen; probeer het over een minuut opnieuw.",
                           headers={"Retry-After": str(attempts.WINDOW_SECONDS)})
        _refuse(presented=bool(plain), failures=failures)
    now = datetime.now(UTC)
    if needs_touch(identity, now):
        with transaction(writer()) as session:
            touch_token(session, identity.id, now)
    g.api_token = identity


def _refuse(*, presented: bool, failures: str) -> NoReturn:
    """Count and audit a failed authentication, then answer 401 with a Bearer challenge."""
    attempts.count_failure(runtime().redis, [failures])
    with transaction(writer()) as session:
        audit.record(session, "api_auth_failed", "api_token", actor="api",
                     ip=request.remote_addr, presented=presented)
    challenge = f'{REALM}, error="invalid_token"' if presented else REALM
    raise ApiError(401, "unauthorized", "Geef een geldige API-sleutel: "
                   "Authorization: Bearer <sleutel>.", headers={"WWW-Authenticate": challenge})


@bp.after_request
def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def _token() -> TokenIdentity:
    return g.api_token


def _actor(session: Session) -> Actor:
    """The token as the permission rules see it: its organisation and its scopes."""
    token = _token()
    organisation = session.get(Organisation, token.organisation_id)
    assert organisation is not None
    return actor_for_token(organisation, token.scopes, token.actor)


@contextmanager
def _reader() -> Iterator[Session]:
    """A short read session: fresh data after the changes a handler made in its own
    transactions (a request-long session would keep an older snapshot on SQLite)."""
    with runtime().sessions() as session:
        yield session


def _queue() -> redis.Redis:
    client = runtime().redis
    if client is None:
        raise ApiError(503, "queue_unavailable",
                       "De wachtrij is niet bereikbaar; probeer het zo opnieuw.",
                       headers={"Retry-After": "5"})
    return client


def _owned(session: Session, action_id: int) -> Action:
    """The action if it belongs to the token's organisation; any other is 404, so another
    organisation's actions do not even show that they exist."""
    action = session.scalar(select(Action).where(
        Action.id == action_id, Action.organisation_id == _token().organisation_id))
    if action is None:
        raise ApiError(404, "action_not_found", "Deze actie bestaat niet (in uw organisatie).")
    return action


# --- handlers -------------------------------------------------------------------------------

@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI document (public: it holds no data)."""
    return jsonify(contract.document())


@bp.post("/actions")
def create() -> tuple[Response, int, dict[str, str]]:
    """Create a draft action (and start it when asked), at most once per idempotency key."""
    checked = contract.check("createAction")
    body, key = checked.body, _idempotency_key(checked)
    guard = Idempotency(_queue(), _token().organisation_id, key, body) if key else None
    action_id = guard.claim() if guard else None
    if action_id is not None:
        status, headers = 200, {"Idempotent-Replayed": "true"}
    else:
        try:
            action_id = _create(body)
        except BaseException:
            if guard:
                guard.release()
            raise
        if guard:
            guard.complete(action_id)
        status, headers = 201, {"Location": url_for("api.status", action_id=action_id)}
    if body.get("start"):
        _start(action_id)  # a retry completes a start the first request could not make
    with _reader() as session:
        return jsonify(_action_json(session, _owned(session, action_id))), status, headers


@bp.get("/actions")
def index() -> Response:
    """The organisation's actions, newest first, a page at a time."""
    params = contract.check("listActions").params
    page, per_page = params.get("page", 1), params.get("per_page", 25)
    query = select(Action).where(Action.organisation_id == _token().organisation_id)
    if "status" in params:
        query = query.where(Action.status == ActionStatus(params["status"]))
    with _reader() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery()))
        actions = session.scalars(query.order_by(Action.id.desc())
                                  .limit(per_page).offset((page - 1) * per_page)).all()
        items = [_summary(action) for action in actions]
    return jsonify({"items": items, "page": page, "per_page": per_page, "total": total})


@bp.get("/actions/<action_id>")
def status(action_id: str) -> Response:
    """The action with its outbox progress, inbound calls and tips (counted, not shown)."""
    params = contract.check("getAction", {"action_id": action_id}).params
    with _reader() as session:
        return jsonify(_action_json(session, _owned(session, params["action_id"])))


@bp.post("/actions/<action_id>/start")
def start(action_id: str) -> Response:
    """Start a draft; a second start answers started=false and queues nothing."""
    params = contract.check("startAction", {"action_id": action_id}).params
    with _reader() as session:
        found = _owned(session, params["action_id"]).id
    started = _start(found)
    with _reader() as session:
        current = _owned(session, found).status
    return jsonify({"id": found, "started": started, "status": current.value})


@bp.post("/actions/<action_id>/end")
def end(action_id: str) -> Response:
    """End an active action with an outcome; ending twice is a conflict, not a second result."""
    checked = contract.check("endAction", {"action_id": action_id})
    with _reader() as session:
        action = _owned(session, checked.params["action_id"])
        found, current, who = action.id, action.status, _actor(session)
    if current != ActionStatus.ACTIVE:
        raise ApiError(409, "action_not_active", NOT_ACTIVE[current])
    outcome, text = checked.body["outcome"], checked.body.get("text")
    ending = end_and_queue(writer(), _queue(), found, outcome, text, now=datetime.now(UTC),
                           who=who)
    return jsonify({"id": found, "status": ActionStatus.ENDED.value, "outcome": outcome,
                    "results": ending.results, "withdrawn": ending.withdrawn})


@bp.get("/places")
def places() -> Response:
    """Postcodes, places, municipalities or coordinates for q: where to centre a map, how
    wide, and which municipality and meldkamer it is in (the console's place search)."""
    params = contract.check("searchPlaces").params
    with _reader() as session:
        found = search_places(session, params["q"], params.get("limit", DEFAULT_LIMIT))
    return jsonify(places_json(params["q"], found, contract.translate))


# --- helpers of the handlers ------------------------------------------------------------------

def _idempotency_key(checked: contract.Checked) -> str | None:
    header, field = checked.params.get("Idempotency-Key"), checked.body.get("external_id")
    if header and field and header != field:
        raise ApiError(400, "invalid_request", "Het verzoek klopt niet met de API-beschrijving.",
                       fields={"external_id": contract.translate(
                           "Verschilt van de Idempotency-Key-header.")})
    return header or field


def _create(body: dict[str, Any]) -> int:
    """Store the draft in its own committed transaction, so starting it can see it; whether
    the token may make it is the action service's to judge (NotPermitted: 403)."""
    with transaction(writer()) as session:
        draft, errors = _draft(body)
        try:
            action = create_action(session, draft, _actor(session))
        except ActionInvalid as exc:
            raise ActionInvalid({**exc.errors, **errors}, exc.details) from None
        if errors:
            raise ActionInvalid(errors)
        return action.id


def _draft(body: dict[str, Any]) -> tuple[ActionDraft, dict[str, str]]:
    """The draft the body describes, and what is wrong beyond what `create_action` checks."""
    errors: dict[str, str] = {}
    area = body.get("area") or {}
    if body.get("national") and area:
        errors["area"] = contract.translate("Een landelijke actie heeft geen gebied.")
    texts = {f"{name}_{lang}": (body.get(name) or {}).get(lang)
             for name in ("title", "description", "instruction") for lang in ("nl", "en")}
    circle = area.get("type") == "circle"
    draft = ActionDraft(
        kind=body["kind"], urgency=body.get("urgency"), meldkamer_code=body.get("meldkamer") or "",
        title_nl=texts["title_nl"] or "", title_en=texts["title_en"] or None,
        description_nl=texts["description_nl"] or "", description_en=texts["description_en"],
        instruction_nl=texts["instruction_nl"] or "", instruction_en=texts["instruction_en"],
        lat=area.get("lat") if circle else None, lon=area.get("lon") if circle else None,
        radius_m=area.get("radius_m") if circle else None,
        polygon=None if circle or not area else area, national=bool(body.get("national")))
    return draft, errors


def _start(action_id: int) -> bool:
    with _reader() as session:
        who = _actor(session)
    return start_for_request(writer(), _queue(), action_id, now=datetime.now(UTC), who=who)


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _summary(action: Action) -> dict[str, Any]:
    return {"id": action.id, "kind": action.kind.value, "urgency": action.urgency.value,
            "status": action.status.value, "national": action.national,
            "meldkamer": action.meldkamer.code,
            "title": {"nl": action.title_nl, "en": action.title_en},
            "created_at": _time(action.created_at), "started_at": _time(action.started_at),
            "ended_at": _time(action.ended_at),
            "outcome": action.outcome.value if action.outcome else None}


def _area(action: Action) -> dict[str, Any] | None:
    if action.national:
        return None
    if action.polygon is not None:
        return action.polygon
    return {"type": "circle", "lat": action.center_lat, "lon": action.center_lon,
            "radius_m": action.radius_m}


def _action_json(session: Session, action: Action) -> dict[str, Any]:
    """An action as the API shows it: no tip contents, photos or participant data."""
    result = progress(session, action.id, runtime().settings, datetime.now(UTC))
    channels = {channel.value: {
        "counts": {status.value: n for status, n in result.counts.get(channel, {}).items()},
        "rate_per_second": result.rate_per_second.get(channel, 0.0),
        "remaining_seconds": result.remaining_seconds.get(channel, 0.0)}
        for channel in {*result.counts, *result.rate_per_second}}
    calls = session.scalar(select(func.count()).select_from(CallRecord).where(
        CallRecord.action_id == action.id, CallRecord.direction == CallDirection.INBOUND))
    tips = session.scalar(select(func.count()).select_from(Tip).where(Tip.action_id == action.id))
    return {**_summary(action),
            "description": {"nl": action.description_nl, "en": action.description_en},
            "instruction": {"nl": action.instruction_nl, "en": action.instruction_en},
            "area": _area(action), "outbox_done_at": _time(action.outbox_done_at),
            "outcome_text": action.outcome_text,
            "progress": {"total": result.total, "forecast_seconds": result.forecast_seconds,
                         "channels": channels},
            "inbound_calls": calls or 0, "tips": tips or 0}
