"""The dispatch system's JSON API: tokens, organisation scoping, the action life cycle with a
real Redis, idempotent creation, and one error shape for every kind of bad request."""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import redis
from flask.testing import FlaskClient
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.db import transaction
from core.models import (
    Action,
    ApiToken,
    AuditEvent,
    CallDirection,
    CallRecord,
    Delivery,
    Organisation,
    Tip,
)
from core.tokens import create_token, revoke_token
from outbound.queues import queue_names
from tests.population import add_people, neighbourhood
from web import api_contract

MN = "Politie Midden-Nederland"
ADMIN_ORG = "Politie Nederland - beheer Burgernet"
CIRCLE = {"type": "circle", "lat": 52.0907, "lon": 5.1214, "radius_m": 3000}
DRAFT = {"kind": "suspect", "title": {"nl": "Man in rode jas", "en": "Man in red coat"},
         "description": {"nl": "Ongeveer 30 jaar."}, "instruction": {"nl": "Niet benaderen."},
         "area": CIRCLE}
OPEN_RING = {"type": "Polygon", "coordinates": [[[5.1, 52.0], [5.2, 52.0], [5.2, 52.1],
                                                [5.1, 52.1]]]}

MakeToken = Callable[..., str]


@pytest.fixture
def make_token(sessions: sessionmaker[Session]) -> MakeToken:
    """A plain API token for the organisation named ORGANISATION, with SCOPES (none: the
    defaults of its kind)."""

    def make(organisation: str = MN, name: str = "GMS", scopes: tuple[str, ...] = ()) -> str:
        with transaction(sessions) as session:
            org = session.scalar(select(Organisation).where(Organisation.name == organisation))
            _token, plain = create_token(session, org, name, now=datetime.now(UTC),
                                         scopes=scopes)
        return plain

    return make


@pytest.fixture
def token(make_token: MakeToken) -> str:
    return make_token()


def bearer(plain: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {plain}", **extra}


def jobs(connection: redis.Redis) -> int:
    return sum(Queue(name, connection=connection, serializer=JSONSerializer).count
               for name in queue_names())


def create(client: FlaskClient, plain: str, body: dict | None = None, **headers: str):
    return client.post("/api/v1/actions", json=DRAFT if body is None else body,
                       headers=bearer(plain, **headers))


# --- authentication -----------------------------------------------------------------------

def test_the_openapi_document_is_public_and_is_the_file_the_app_validates_with(
        client: FlaskClient) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.get_json() == api_contract.document()
    assert response.get_json()["openapi"].startswith("3.1")
    assert set(api_contract.operations()) == {"createAction", "listActions", "getAction",
                                              "startAction", "endAction", "searchPlaces",
                                              "getOpenApi"}


def test_the_documents_own_examples_are_valid_and_create_actions(
        client: FlaskClient, make_token: MakeToken) -> None:
    operation = api_contract.document()["paths"]["/actions"]["post"]
    examples = operation["requestBody"]["content"]["application/json"]["examples"]
    plain = make_token(MN, "voorbeeld", ("suspect", "vehicle", "amber", "amber_national"))
    for name, example in examples.items():
        response = create(client, plain, example["value"])
        assert response.status_code == 201, (name, response.get_json())


@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer bn_not-a-real-token",
    "Bearer " + "x" * 5000, "Bearer \u00e9t\u00e9",
])
def test_a_missing_or_unknown_token_gets_401_with_a_bearer_challenge(
        client: FlaskClient, db: Session, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.get("/api/v1/actions", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="burgernet"')
    error = response.get_json()["error"]
    assert error["id"] == "unauthorized" and "Bearer" in error["message"]
    assert db.scalar(select(AuditEvent).where(AuditEvent.verb == "api_auth_failed")).ip \
        == "127.0.0.1"


def test_a_revoked_token_stops_working_at_once(client: FlaskClient, sessions, token: str) -> None:
    assert client.get("/api/v1/actions", headers=bearer(token)).status_code == 200
    with transaction(sessions) as session:
        row = session.scalar(select(ApiToken))
        assert revoke_token(session, row.id, now=datetime.now(UTC))
    response = client.get("/api/v1/actions", headers=bearer(token))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_only_the_hash_is_stored_and_use_is_recorded(client: FlaskClient, db: Session,
                                                     token: str) -> None:
    row = db.scalar(select(ApiToken))
    assert token.startswith("bn_") and len(token) >= 40
    assert row.token_hash != token and len(row.token_hash) == 64 and row.last_used_at is None
    client.get("/api/v1/actions", headers=bearer(token))
    db.expire_all()
    assert db.scalar(select(ApiToken)).last_used_at is not None


def test_too_many_failures_from_one_address_get_429_for_a_minute(
        client: FlaskClient, token: str) -> None:
    for _ in range(20):
        assert client.get("/api/v1/actions", headers=bearer("bn_guess")).status_code == 401
    blocked = client.get("/api/v1/actions", headers=bearer("bn_guess"))
    assert blocked.status_code == 429 and blocked.headers["Retry-After"] == "60"
    assert blocked.get_json()["error"]["id"] == "too_many_failures"
    assert client.get("/api/v1/actions").status_code == 429  # no token at all: a failure too


def test_nobody_s_bad_tokens_lock_out_a_valid_one(client: FlaskClient, token: str,
                                                  db: Session) -> None:
    """A dispatch system shares its address with whoever is behind the same NAT or proxy;
    a key of 256 random bits is checked first, since guessing one is hopeless anyway."""
    for _ in range(25):
        client.get("/api/v1/actions", headers=bearer("bn_guess"))
    assert client.get("/api/v1/actions", headers=bearer(token)).status_code == 200
    audited = db.scalars(select(AuditEvent).where(AuditEvent.verb == "api_auth_failed")).all()
    assert len(audited) == 20  # the refused ones past the limit are not written one by one


def test_failures_from_one_ipv6_64_count_together(client: FlaskClient, token: str) -> None:
    """A client holds its whole /64: new addresses from it are the same client."""
    for n in range(20):
        assert client.get("/api/v1/actions", headers=bearer("bn_guess"),
                          environ_base={"REMOTE_ADDR": f"2001:db8:5:6::{n + 1:x}"}
                          ).status_code == 401
    same_client = {"REMOTE_ADDR": "2001:db8:5:6:ffff::1"}
    assert client.get("/api/v1/actions", headers=bearer("bn_guess"),
                      environ_base=same_client).status_code == 429
    assert client.get("/api/v1/actions", headers=bearer(token),
                      environ_base=same_client).status_code == 200  # a valid key always passes
    assert client.get("/api/v1/actions", headers=bearer("bn_guess"),
                      environ_base={"REMOTE_ADDR": "2001:db8:5:7::1"}).status_code == 401


# --- organisation scoping -------------------------------------------------------------------

def test_a_token_sees_and_changes_only_its_own_organisations_actions(
        client: FlaskClient, make_token: MakeToken) -> None:
    ours, theirs = make_token(MN, "GMS"), make_token(ADMIN_ORG, "Landelijk")
    action_id = create(client, ours).get_json()["id"]
    for method, path, body in [("get", f"/api/v1/actions/{action_id}", None),
                               ("post", f"/api/v1/actions/{action_id}/start", None),
                               ("post", f"/api/v1/actions/{action_id}/end",
                                {"outcome": "found"})]:
        response = getattr(client, method)(path, json=body, headers=bearer(theirs))
        assert response.status_code == 404, (method, path)
        assert response.get_json()["error"]["id"] == "action_not_found"
    assert client.get("/api/v1/actions", headers=bearer(theirs)).get_json()["total"] == 0
    assert client.get(f"/api/v1/actions/{action_id}",
                      headers=bearer(ours)).get_json()["status"] == "draft"


def test_an_organisation_with_a_meldkamer_may_not_name_another(client: FlaskClient,
                                                               token: str) -> None:
    response = create(client, token, {**DRAFT, "meldkamer": "RO", "title": {"nl": ""}})
    assert response.status_code == 400  # the empty title breaks the document first
    response = create(client, token, {**DRAFT, "meldkamer": "RO"})
    assert response.status_code == 403
    error = response.get_json()["error"]
    assert error["id"] == "action_not_permitted"
    assert error["fields"] == {
        "meldkamer": "Deze organisatie maakt alleen acties van haar eigen meldkamer."}
    assert error["details"] == {"meldkamer": "RO is not MN, the organisation's own"}
    own = create(client, token, {**DRAFT, "meldkamer": "MN"})
    assert own.status_code == 201 and own.get_json()["meldkamer"] == "MN"


def test_an_organisation_without_a_meldkamer_names_one(client: FlaskClient,
                                                       make_token: MakeToken) -> None:
    plain = make_token(ADMIN_ORG, "Landelijk")
    missing = create(client, plain)
    assert missing.status_code == 422
    assert missing.get_json()["error"]["fields"] == {"meldkamer": "Kies een bestaande meldkamer."}
    assert create(client, plain, {**DRAFT, "meldkamer": "MN"}).status_code == 201


# --- the life cycle ---------------------------------------------------------------------------

def test_create_start_follow_and_end_an_action_through_a_real_redis(
        client: FlaskClient, db: Session, sessions, redis_client: redis.Redis,
        token: str, write_outboxes) -> None:
    with sessions() as session:
        add_people(session, neighbourhood(16), datetime.now(UTC))  # inside the circle
        session.commit()
    created = create(client, token)
    assert created.status_code == 201
    action = created.get_json()
    assert created.headers["Location"].endswith(f"/api/v1/actions/{action['id']}")
    assert action["status"] == "draft" and action["area"] == CIRCLE
    assert action["title"] == {"nl": "Man in rode jas", "en": "Man in red coat"}
    assert action["progress"] == {"total": 0, "forecast_seconds": 0.0, "channels": {}}

    started = client.post(f"/api/v1/actions/{action['id']}/start", headers=bearer(token))
    assert started.status_code == 200
    assert started.get_json() == {"id": action["id"], "started": True, "status": "active"}
    again = client.post(f"/api/v1/actions/{action['id']}/start", headers=bearer(token))
    assert again.status_code == 200
    assert again.get_json() == {"id": action["id"], "started": False, "status": "active"}
    write_outboxes()
    deliveries = db.scalar(select(func.count(Delivery.id))
                           .where(Delivery.action_id == action["id"]))
    assert deliveries > 0 and jobs(redis_client) > 0
    result = {"deliveries": deliveries}

    status = client.get(f"/api/v1/actions/{action['id']}", headers=bearer(token)).get_json()
    assert status["progress"]["total"] == result["deliveries"]
    assert sum(c["counts"].get("queued", 0) for c in status["progress"]["channels"].values()) \
        == result["deliveries"]
    assert status["progress"]["forecast_seconds"] > 0  # 1 SMS and 1 call a second by default
    listed = client.get("/api/v1/actions?status=active", headers=bearer(token)).get_json()
    assert [item["id"] for item in listed["items"]] == [action["id"]]

    ended = client.post(f"/api/v1/actions/{action['id']}/end",
                        json={"outcome": "arrested", "text": "Dank voor het uitkijken."},
                        headers=bearer(token))
    assert ended.status_code == 200
    assert ended.get_json()["status"] == "ended"
    assert ended.get_json()["withdrawn"] == result["deliveries"]  # none had gone out yet

    twice = client.post(f"/api/v1/actions/{action['id']}/end", json={"outcome": "found"},
                        headers=bearer(token))
    assert twice.status_code == 409
    assert twice.get_json()["error"] == {"id": "action_not_active", "fields": {},
                                         "message": "Deze actie is al beëindigd."}

    verbs = {(e.verb, e.actor) for e in db.scalars(
        select(AuditEvent).where(AuditEvent.object_type == "action",
                                 AuditEvent.object_id == str(action["id"])))}
    assert {("create", "api:GMS"), ("start", "api:GMS"), ("end", "api:GMS")} <= verbs


def test_create_with_start_true_queues_at_once(client: FlaskClient, sessions,
                                               redis_client: redis.Redis, token: str) -> None:
    """The batches are queued with the answer."""
    with sessions() as session:
        add_people(session, neighbourhood(4), datetime.now(UTC))  # inside the circle
        session.commit()
    response = create(client, token, {**DRAFT, "start": True})
    assert response.status_code == 201
    assert response.get_json()["status"] == "active"
    assert jobs(redis_client) > 0


def test_ending_a_draft_is_a_conflict(client: FlaskClient, token: str) -> None:
    action_id = create(client, token).get_json()["id"]
    response = client.post(f"/api/v1/actions/{action_id}/end", json={"outcome": "found"},
                           headers=bearer(token))
    assert response.status_code == 409
    assert response.get_json()["error"]["message"] == \
        "Deze actie is nog niet gestart; alleen een actieve actie kan eindigen."


def test_status_counts_calls_and_tips_without_showing_them(
        client: FlaskClient, db: Session, token: str) -> None:
    action_id = create(client, token).get_json()["id"]
    db.add_all([Tip(action_id=action_id, source="sms", text="Hij liep richting station"),
                CallRecord(direction=CallDirection.INBOUND, transport="twilio",
                           caller="+31612345678", action_id=action_id),
                CallRecord(direction=CallDirection.OUTBOUND, transport="twilio",
                           action_id=action_id)])
    db.commit()
    response = client.get(f"/api/v1/actions/{action_id}", headers=bearer(token))
    body = response.get_data(as_text=True)
    assert response.get_json()["tips"] == 1 and response.get_json()["inbound_calls"] == 1
    assert "station" not in body and "+31612345678" not in body


def test_the_list_pages_newest_first(client: FlaskClient, token: str) -> None:
    ids = [create(client, token).get_json()["id"] for _ in range(3)]
    page = client.get("/api/v1/actions?per_page=2&page=2", headers=bearer(token)).get_json()
    assert page == {"items": [page["items"][0]], "page": 2, "per_page": 2, "total": 3}
    assert page["items"][0]["id"] == ids[0]
    assert client.get("/api/v1/actions?status=ended", headers=bearer(token)).get_json()[
        "items"] == []


# --- idempotency ----------------------------------------------------------------------------

def test_a_retried_create_with_the_same_key_returns_the_same_action(
        client: FlaskClient, db: Session, token: str) -> None:
    first = create(client, token, **{"Idempotency-Key": "gms-4711"})
    retry = create(client, token, **{"Idempotency-Key": "gms-4711"})
    assert first.status_code == 201 and retry.status_code == 200
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_json()["id"] == first.get_json()["id"]
    assert db.scalar(select(func.count(Action.id))) == 1
    other = create(client, token, **{"Idempotency-Key": "gms-4712"})
    assert other.status_code == 201 and other.get_json()["id"] != first.get_json()["id"]


def test_external_id_is_an_idempotency_key_too(client: FlaskClient, db: Session,
                                               token: str) -> None:
    body = {**DRAFT, "external_id": "P-2026-000123"}
    ids = {create(client, token, body).get_json()["id"] for _ in range(3)}
    assert len(ids) == 1 and db.scalar(select(func.count(Action.id))) == 1
    clash = create(client, token, body, **{"Idempotency-Key": "something-else"})
    assert clash.status_code == 400 and "external_id" in clash.get_json()["error"]["fields"]


def test_a_key_reused_for_another_body_is_refused(client: FlaskClient, token: str) -> None:
    assert create(client, token, **{"Idempotency-Key": "k1"}).status_code == 201
    changed = create(client, token, {**DRAFT, "kind": "vehicle"}, **{"Idempotency-Key": "k1"})
    assert changed.status_code == 422
    assert changed.get_json()["error"]["id"] == "idempotency_key_reused"


def test_a_key_still_being_used_answers_409(client: FlaskClient, redis_client: redis.Redis,
                                            db: Session, token: str) -> None:
    from web.api_idempotency import Idempotency

    organisation_id = db.scalar(select(Organisation.id).where(Organisation.name == MN))
    assert Idempotency(redis_client, organisation_id, "busy", DRAFT).claim() is None
    response = create(client, token, **{"Idempotency-Key": "busy"})
    assert response.status_code == 409 and response.headers["Retry-After"] == "1"
    assert response.get_json()["error"]["id"] == "idempotency_in_progress"
    assert db.scalar(select(func.count(Action.id))) == 0


def test_a_failed_create_frees_its_key_for_the_corrected_retry(client: FlaskClient,
                                                              token: str) -> None:
    wrong = create(client, token, {**DRAFT, "area": OPEN_RING}, **{"Idempotency-Key": "k2"})
    assert wrong.status_code == 422
    assert create(client, token, **{"Idempotency-Key": "k2"}).status_code == 201


def test_keys_of_two_organisations_do_not_meet(client: FlaskClient,
                                               make_token: MakeToken) -> None:
    ours, theirs = make_token(MN, "GMS"), make_token(ADMIN_ORG, "Landelijk")
    first = create(client, ours, **{"Idempotency-Key": "same"})
    second = create(client, theirs, {**DRAFT, "meldkamer": "MN"}, **{"Idempotency-Key": "same"})
    assert first.status_code == second.status_code == 201
    assert first.get_json()["id"] != second.get_json()["id"]


# --- bad requests -------------------------------------------------------------------------------

def test_every_wrong_field_is_named_by_the_document(client: FlaskClient, token: str) -> None:
    response = create(client, token, {"kind": "burglary", "title": {"nl": "x" * 201},
                                      "area": {**CIRCLE, "radius_m": "3 km"}, "colour": "red",
                                      "national": "yes"})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["id"] == "invalid_request"
    assert error["fields"] == {
        "kind": "Kies een van: suspect, vehicle, missing_person, amber, neighbourhood_inquiry, "
                "preventive.",
        "title.nl": "Te lang: hoogstens 200 tekens.",
        "area.radius_m": "Verkeerd type: verwacht number.",
        "colour": "Onbekend veld.",
        "national": "Verkeerd type: verwacht boolean.",
    }
    assert "is not of type" in error["details"]["area.radius_m"]


def test_messages_are_english_when_asked(client: FlaskClient, token: str) -> None:
    response = create(client, token, {"title": {"nl": "x"}}, **{"Accept-Language": "en"})
    error = response.get_json()["error"]
    assert error["message"] == "The request does not match the API description."
    assert error["fields"] == {"kind": "Please fill in this field."}
    domain = create(client, token, {**DRAFT, "title": {"nl": " "}}, **{"Accept-Language": "en"})
    assert domain.status_code == 422
    assert domain.get_json()["error"]["fields"] == {"title.nl": "Fill in a title."}


def test_the_action_services_own_checks_come_back_per_field(client: FlaskClient,
                                                           make_token: MakeToken) -> None:
    token = make_token(MN, "GMS", ("suspect", "amber", "amber_national"))
    response = create(client, token, {**DRAFT, "area": OPEN_RING})
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["id"] == "invalid_action"
    assert error["fields"] == {"area": "Het getekende gebied is geen geldige veelhoek."}
    assert "open" in error["details"]["area"]
    national = create(client, token, {"kind": "suspect", "title": {"nl": "x"},
                                      "national": True})
    assert national.get_json()["error"]["fields"] == {
        "area": "Alleen een AMBER Alert kan landelijk zijn."}
    amber = create(client, token, {"kind": "amber", "title": {"nl": "Vermist kind"},
                                   "national": True})
    assert amber.status_code == 201 and amber.get_json()["area"] is None


def test_a_title_is_one_line_and_no_text_holds_control_characters(
        client: FlaskClient, token: str, sessions, redis_client: redis.Redis) -> None:
    """A line break in a title would make every e-mail of the action fail (an e-mail subject
    is one line), a control character any TwiML <Say> invalid XML."""
    titled = create(client, token, {**DRAFT, "title": {"nl": "Man\nBcc: x@example.org"}})
    assert titled.status_code == 422
    assert titled.get_json()["error"]["fields"] == {
        "title.nl": "Een titel is één regel tekst, zonder regeleinden of andere stuurtekens."}
    bell = create(client, token, {**DRAFT, "description": {"nl": "Let op\x07"},
                                  "instruction": {"en": "Go\u2028away"}},
                  **{"Accept-Language": "en"})
    assert bell.get_json()["error"]["fields"] == {
        "description.nl": "The text holds a control character; only line breaks and tabs "
                          "are allowed."}
    lines = create(client, token, {**DRAFT, "description": {"nl": "Rode jas.\r\n\tZwarte pet."},
                                   "start": True})
    assert lines.status_code == 201
    ended = client.post(f"/api/v1/actions/{lines.get_json()['id']}/end",
                        json={"outcome": "found", "text": "Gevonden\x1b[31m"},
                        headers=bearer(token))
    assert ended.status_code == 422
    assert ended.get_json()["error"]["fields"] == {
        "text": "De tekst bevat een stuurteken; alleen regeleinden en tabs mogen."}


def test_the_area_names_the_wrong_part_of_the_shape_that_was_meant(client: FlaskClient,
                                                                   token: str) -> None:
    circle = create(client, token, {**DRAFT, "area": {"type": "circle", "lat": 95, "lon": 5}})
    assert circle.get_json()["error"]["fields"] == {"area.lat": "Te groot: hoogstens 72.",
                                                    "area.radius_m": "Vul dit veld in."}
    shapeless = create(client, token, {**DRAFT, "area": {"type": "square"}})
    assert list(shapeless.get_json()["error"]["fields"]) == ["area"]


@pytest.mark.parametrize(("data", "content_type", "status", "error_id"), [
    ("kind=suspect", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    (json.dumps(DRAFT), "text/plain", 415, "unsupported_media_type"),
    ("{\"kind\": ", "application/json", 400, "invalid_json"),
    ("", "application/json", 400, "invalid_json"),
    ('{"kind": "suspect", "title": {"nl": "x"}, "area": {"type": "circle", "lat": NaN, '
     '"lon": 5, "radius_m": 1}}', "application/json", 400, "invalid_json"),
    ("[" * 100_000 + "]" * 100_000, "application/json", 400, "invalid_json"),
    ('{"kind": 1' + "0" * 5000 + "}", "application/json", 400, "invalid_json"),
    ("[1, 2]", "application/json", 400, "invalid_request"),
    ('"text"', "application/json", 400, "invalid_request"),
    ('{"kind": "suspect", "title": {"nl": "x"}, "area": {"type": "circle", "lat": 1e999, '
     '"lon": 5, "radius_m": 1}}', "application/json", 400, "invalid_request"),
    ('{"kind": "suspect", "title": {"nl": "x", "en": "' + "y" * 1_100_000 + '"}}',
     "application/json", 413, "body_too_large"),
])
def test_malformed_bodies_get_the_error_shape_never_a_500(
        client: FlaskClient, token: str, data: str, content_type: str, status: int,
        error_id: str) -> None:
    response = client.post("/api/v1/actions", data=data, content_type=content_type,
                           headers=bearer(token))
    assert response.status_code == status
    assert response.is_json and response.get_json()["error"]["id"] == error_id


@pytest.mark.parametrize(("method", "path", "status", "error_id"), [
    ("get", "/api/v1/nothing-here", 404, "not_found"),
    ("delete", "/api/v1/actions", 405, "method_not_allowed"),
    ("get", "/api/v1/actions/abc", 400, "invalid_request"),
    ("get", "/api/v1/actions/0", 400, "invalid_request"),
    ("get", "/api/v1/actions/99999999999999999999999", 400, "invalid_request"),
    ("get", "/api/v1/actions/2147483647", 404, "action_not_found"),
    ("get", "/api/v1/actions?page=0", 400, "invalid_request"),
    ("get", "/api/v1/actions?per_page=many", 400, "invalid_request"),
    ("get", "/api/v1/actions?status=lost", 400, "invalid_request"),
    ("get", "/api/v1/actions?stauts=active", 400, "invalid_request"),
    ("post", "/api/v1/actions/1/start?now=1", 400, "invalid_request"),
])
def test_wrong_paths_methods_and_parameters_answer_in_json(
        client: FlaskClient, token: str, method: str, path: str, status: int,
        error_id: str) -> None:
    response = getattr(client, method)(path, headers=bearer(token))
    assert response.status_code == status
    assert response.get_json()["error"]["id"] == error_id
    if status == 405:
        assert response.headers["Allow"] == "GET, HEAD, OPTIONS, POST"


def test_the_api_needs_no_csrf_token_and_sets_no_cookie(client: FlaskClient,
                                                        token: str) -> None:
    response = create(client, token)
    assert response.status_code == 201
    assert "Set-Cookie" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"


def _dutch_literals(path: str, calls: set[str], position: int) -> set[str]:
    """The string literals passed as argument POSITION to the functions named CALLS."""
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Call) and len(node.args) > position:
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            argument = node.args[position]
            if name in calls and isinstance(argument, ast.Constant) \
                    and isinstance(argument.value, str):
                found.add(argument.value)
    return found


def _domain_messages(path: str) -> set[str]:
    """The plain (not formatted) Dutch messages the action service puts in its errors."""
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Dict | ast.Assign | ast.Call):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.Constant) and isinstance(child.value, str) \
                        and child.value.endswith(".") and child.value[:1].isupper():
                    found.add(child.value)
    return found


def test_every_message_the_api_can_give_has_an_english_translation() -> None:
    from web.i18n import ENGLISH

    dutch = set(api_contract.MESSAGES.values()) | _domain_messages("outbound/actions.py") \
        | _domain_messages("web/api.py") | _domain_messages("core/permissions.py") \
        | _domain_messages("core/tokens.py")
    for module in ("web/api.py", "web/api_contract.py", "web/api_idempotency.py"):
        dutch |= _dutch_literals(module, {"ApiError"}, 2)
        dutch |= _dutch_literals(module, {"translate"}, 0)
    assert len(dutch) > 40
    assert sorted(text for text in dutch if text not in ENGLISH) == []
