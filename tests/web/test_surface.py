"""The whole web surface at once: every route for every kind of visitor, with input no form
would send (issue 12's review; the table of what was checked is docs/security-review.md)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.models import (
    Action,
    ActionKind,
    ActionStatus,
    AuditEvent,
    InquiryReaction,
    Meldkamer,
    Organisation,
    OrganisationKind,
    PushSubscription,
    Role,
    Tip,
    Urgency,
    User,
)
from tests.web import test_portal
from tests.web.helpers import csrf_token, login, login_as
from tests.web.test_portal import Sms, _add_device, _join, _subscription
from tests.web.test_reaction import _delivery

sms = test_portal.sms
BEYOND = "99999999999999999999999"  # more than 64 bits: SQLite's OverflowError before
VISITORS = ("anonymous", "admin", "centralist", "municipality_officer")


def _visitor(app: Flask, who: str) -> FlaskClient:
    client = app.test_client()
    return client if who == "anonymous" else login_as(client, who)


def _token(client: FlaskClient) -> str:
    """A CSRF token of CLIENT's session, from a form every visitor may open."""
    return csrf_token(client, "/wachtwoord" if client.get_cookie("session") else "/login")


def _id_routes(app: Flask) -> Iterator[tuple[str, str]]:
    """(method, path) of every route with a row id in its path, the id beyond any table."""
    for rule in app.url_map.iter_rules():
        if "<int:" not in rule.rule:
            continue
        path = re.sub(r"<int:[^>]+>", BEYOND, rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, path


@pytest.mark.parametrize("who", VISITORS)
def test_an_id_beyond_the_database_is_not_found_on_every_route(app: Flask, who: str) -> None:
    client = _visitor(app, who)
    token = _token(client)
    routes = list(_id_routes(app))
    assert len(routes) >= 15
    for method, path in routes:
        response = client.open(path, method=method, data={"csrf_token": token})
        assert response.status_code == 404, (method, path, response.status_code)


@pytest.fixture
def police_rows(db: Session) -> dict[str, int]:
    """Rows of Politie Midden-Nederland behind every kind of id a route takes: an active
    search action with a photo and a tip with a photo, an inquiry draft and a sent inquiry,
    a participant's place and device, an API key."""
    police = db.scalar(select(Organisation).where(Organisation.name == "Politie Midden-Nederland"))
    mn = db.scalar(select(Meldkamer).where(Meldkamer.code == "MN"))

    def action(kind: ActionKind, status: ActionStatus) -> Action:
        row = Action(kind=kind, urgency=Urgency.URGENT, status=status, title_nl="Eigen actie",
                     center_lat=52.09, center_lon=5.12, radius_m=500, organisation=police,
                     meldkamer=mn, photo_path="a.jpg", photo_type="image/jpeg",
                     started_at=None if status == ActionStatus.DRAFT else datetime.now(UTC))
        db.add(row)
        return row

    search = action(ActionKind.SUSPECT, ActionStatus.ACTIVE)
    draft = action(ActionKind.NEIGHBOURHOOD_INQUIRY, ActionStatus.DRAFT)
    sent = action(ActionKind.NEIGHBOURHOOD_INQUIRY, ActionStatus.ACTIVE)
    tip = Tip(action=search, source="sms", text="Gezien", media_path="t.jpg",
              media_type="image/jpeg", received_at=datetime.now(UTC))
    db.add(tip)
    db.commit()
    return {"search": search.id, "draft": draft.id, "sent": sent.id, "tip": tip.id}


def _as_of_police(rule: str, rows: dict[str, int]) -> list[str]:
    """RULE's path once for each of the police's rows its id may name."""
    if "<int:tip_id>" in rule:
        return [rule.replace("<int:tip_id>", str(rows["tip"]))]
    return [rule.replace("<int:action_id>", str(rows[which]))
            for which in ("search", "draft", "sent")]


@pytest.mark.parametrize("who", ["municipality_officer", "other_police"])
def test_another_organisations_rows_are_not_found_on_any_route(app: Flask, db: Session,
                                                               police_rows: dict[str, int],
                                                               who: str) -> None:
    """Every route naming an action or a tip, read or write, as staff of another
    organisation: nothing is shown, nothing changes (the participant's own rows are
    test_portal's: another participant's place or device is a 404 there)."""
    from werkzeug.security import generate_password_hash

    from core.seed import DEMO_PASSWORD
    if who == "other_police":
        db.add(User(email="rotterdam@example.org", name="Centralist Rotterdam",
                    role=Role.CENTRALIST, password_hash=generate_password_hash(DEMO_PASSWORD),
                    organisation=Organisation(name="Politie Rotterdam",
                                              kind=OrganisationKind.POLICE)))
        db.commit()
        client = app.test_client()
        assert login(client, "rotterdam@example.org").status_code == 302
    else:
        client = _visitor(app, who)
    token = _token(client)
    checked = 0
    for rule in app.url_map.iter_rules():
        if "<int:action_id>" not in rule.rule and "<int:tip_id>" not in rule.rule:
            continue
        for path in _as_of_police(rule.rule, police_rows):
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                response = client.open(path, method=method, data={
                    "csrf_token": token, "outcome": "found", "title_nl": "Overgenomen",
                    "text_nl": "x", "update_nl": "x", "lat": "52.09", "lon": "5.12",
                    "radius_m": "500"})
                assert response.status_code in {403, 404}, (method, path, response.status_code)
                assert "Eigen actie" not in response.get_data(as_text=True)
                checked += 1
    assert checked >= 30
    db.expire_all()
    assert [(a.status, a.title_nl, a.update_nl) for a in db.scalars(
        select(Action).order_by(Action.id))] == [
        (ActionStatus.ACTIVE, "Eigen actie", None), (ActionStatus.DRAFT, "Eigen actie", None),
        (ActionStatus.ACTIVE, "Eigen actie", None)]


#: Blueprints whose POSTs carry no CSRF token: the API (a bearer key, no cookie), LoST (no
#: state changes) and Twilio's webhooks (signed).
NO_CSRF = {"api", "lost", "voice", "webhooks"}


def test_every_form_post_without_its_csrf_token_is_refused(app: Flask, db: Session,
                                                          police_rows: dict[str, int]) -> None:
    client = _visitor(app, "admin")
    before = _row_counts(db)
    posts = [rule for rule in app.url_map.iter_rules()
             if "POST" in rule.methods and rule.endpoint.split(".")[0] not in NO_CSRF]
    assert len(posts) >= 25
    for rule in posts:
        path = rule.rule.replace("<int:action_id>", str(police_rows["draft"]))
        path = re.sub(r"<int:[^>]+>", "1", path)
        response = client.post(path, data={"title_nl": "x", "confirm": "y", "name": "n"})
        # 400, or a municipal page's "the form expired": back to the page, nothing done
        assert response.status_code == 400 or (
            path.startswith("/gemeente/") and response.status_code == 302
            and response.headers["Location"] == f"/gemeente/{police_rows['draft']}"), path
    assert _row_counts(db) == before


def _row_counts(db: Session) -> dict[str, int]:
    from core.models import Base

    db.expire_all()
    return {table.name: db.scalar(select(func.count()).select_from(table)) or 0
            for table in Base.metadata.sorted_tables}


@pytest.mark.parametrize("who", VISITORS)
def test_no_get_changes_anything_but_the_audit_of_an_export_or_a_refusal(
        app: Flask, db: Session, police_rows: dict[str, int], who: str) -> None:
    client = _visitor(app, who)
    before = _row_counts(db)
    audited = db.scalar(select(func.max(AuditEvent.id))) or 0
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint == "static":
            continue
        path = rule.rule.replace("<int:action_id>", str(police_rows["search"]))
        path = path.replace("<int:tip_id>", str(police_rows["tip"]))
        client.get(re.sub(r"<[^>]+>", "x", path))
    after = _row_counts(db)
    assert {name: n for name, n in after.items() if name != "audit_event"} == \
        {name: n for name, n in before.items() if name != "audit_event"}
    verbs = set(db.scalars(select(AuditEvent.verb).where(AuditEvent.id > audited)))
    assert verbs <= {"export", "forbidden", "api_auth_failed"}


@pytest.mark.parametrize("path", ["/console/", "/gemeente/"])
def test_a_page_number_beyond_any_list_is_an_empty_page(app: Flask, path: str) -> None:
    client = _visitor(app, "admin")
    for page in (BEYOND, "-3", "x", "1e9", "٣"):
        assert client.get(f"{path}?page={page}").status_code == 200, page


def test_an_organisation_beyond_the_database_is_refused_in_dutch(app: Flask) -> None:
    client = _visitor(app, "admin")
    response = client.post("/beheer/api-sleutels/", data={
        "organisation": BEYOND, "name": "Meldkamer", "csrf_token": _token(client)})
    assert response.status_code == 400 and "Kies een organisatie." in response.get_data(True)


# --- nothing personal is cached ------------------------------------------------------------

@pytest.fixture
def answered_inquiry(app: Flask, db: Session) -> Action:
    """An inquiry of Gemeente Utrecht with a reaction that leaves an e-mail address."""
    action = Action(kind=ActionKind.NEIGHBOURHOOD_INQUIRY, urgency=Urgency.NORMAL,
                    status=ActionStatus.ACTIVE, title_nl="Inbraak", description_nl="Wie zag?",
                    center_lat=52.09, center_lon=5.12, radius_m=500,
                    organisation=db.scalar(select(Organisation)
                                           .where(Organisation.name == "Gemeente Utrecht")),
                    meldkamer=db.scalar(select(Meldkamer).where(Meldkamer.code == "MN")),
                    started_at=datetime.now(UTC))
    db.add(action)
    db.commit()
    delivery = _delivery(db, action)
    db.add(InquiryReaction(action_id=action.id, delivery_id=delivery.id, text="Ik zag iets",
                           contact="buur@example.org", received_at=datetime.now(UTC)))
    db.commit()
    return action


@pytest.mark.parametrize(("who", "path"), [
    ("admin", "/beheer/audit"),
    ("admin", "/console/"),
    ("centralist", "/console/actions/new"),
    ("municipality_officer", "/gemeente/{inquiry}"),
    ("municipality_officer", "/statistiek/"),
    ("centralist", "/wachtwoord"),
    ("centralist", "/"),
])
def test_staff_pages_are_never_cached(app: Flask, answered_inquiry: Action, who: str,
                                      path: str) -> None:
    response = _visitor(app, who).get(path.format(inquiry=answered_inquiry.id))
    assert response.status_code == 200
    if "{inquiry}" in path:
        assert "buur@example.org" in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"


def test_a_participant_s_own_page_is_never_cached(client: FlaskClient, sms: Sms) -> None:
    _join(client, sms)
    page = client.get("/deelnemen/mijn")
    assert page.status_code == 200 and "06 12345678" in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"


def test_what_may_be_cached_says_so_itself(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/cap/feed.atom").headers["Cache-Control"] == "public, max-age=60"
    assert "no-store" not in client.get("/static/style.css").headers["Cache-Control"]
    boundaries = _visitor(app, "centralist").get("/console/map/municipalities.geojson")
    assert boundaries.headers["Cache-Control"] == "private, max-age=3600"


# --- refusals that came out as 500 -----------------------------------------------------

@pytest.mark.parametrize("who", ["anonymous", "municipality_officer"])
def test_an_oversized_console_form_from_whoever_may_not_use_it_is_413(app: Flask,
                                                                      who: str) -> None:
    response = _visitor(app, who).post("/console/actions/new",
                                       data={"title_nl": "x" * (11 * 1024 * 1024)})
    assert response.status_code == 413
    assert "<form" not in response.get_data(as_text=True)  # not the form they may not use


@pytest.mark.parametrize("extra", ["endpoint=x", "_method=POST", "_external=1&_scheme=ftp",
                                   "_anchor=x"])
def test_the_audit_export_sends_back_only_the_filters(app: Flask, extra: str) -> None:
    response = _visitor(app, "admin").get(f"/beheer/audit.csv?van=gisteren&wie=a&{extra}")
    assert response.status_code == 302
    assert response.headers["Location"] == "/beheer/audit?wie=a&van=gisteren"


# --- NUL and lone surrogates: text no database stores ----------------------------------

def _post_form(client: FlaskClient, path: str, data: dict[str, str]):
    return client.post(path, data={**data, "csrf_token": _token(client)})


@pytest.mark.parametrize(("who", "path", "data"), [
    ("anonymous", "/login", {"email": "beheer@example.org\x00", "password": "x"}),
    ("anonymous", "/deelnemen/inloggen", {"phone": "06 1234\x005678"}),
    ("centralist", "/console/actions/new", {"kind": "suspect", "title_nl": "Man\x00",
                                            "lat": "52.09", "lon": "5.12", "radius_m": "500"}),
    ("municipality_officer", "/gemeente/bericht/nieuw", {"title_nl": "Let op",
                                                         "text_nl": "a\x00b"}),
    ("admin", "/beheer/api-sleutels/", {"organisation": "1", "name": "n\x00"}),
])
def test_a_nul_in_a_form_is_refused_before_anything_is_stored(app: Flask, db: Session,
                                                              who: str, path: str,
                                                              data: dict[str, str]) -> None:
    client = _visitor(app, who)
    before = db.scalar(select(func.count(AuditEvent.id)))
    response = _post_form(client, path, data)
    assert response.status_code == 400
    assert "(NUL)" in response.get_data(as_text=True)
    assert db.scalar(select(func.count(AuditEvent.id))) == before
    assert db.scalar(select(func.count(Action.id)).where(Action.title_nl.startswith("Man"))) == 0


@pytest.mark.parametrize("path", ["/cap/alerts/burgernet-1%00.xml", "/console/?status=%00",
                                  "/reactie/abc%00def"])
def test_a_nul_in_a_path_or_query_is_refused(app: Flask, path: str) -> None:
    assert _visitor(app, "centralist").get(path).status_code == 400


@pytest.mark.parametrize("escape", ["\\u0000", "\\ud800"])
def test_the_api_refuses_json_text_no_database_stores(app: Flask, db: Session,
                                                      escape: str) -> None:
    from core.tokens import create_token

    organisation = db.scalar(select(Organisation).where(Organisation.name ==
                                                        "Politie Midden-Nederland"))
    _token, plain = create_token(db, organisation, "Meldkamer", now=datetime.now(UTC))
    db.commit()
    body = ('{"kind": "suspect", "title": {"nl": "Man' + escape + '"}, "area": {"type": '
            '"circle", "lat": 52.09, "lon": 5.12, "radius_m": 500}}')
    response = app.test_client().post("/api/v1/actions", data=body, headers={
        "Authorization": f"Bearer {plain}", "Content-Type": "application/json"})
    assert response.status_code == 400 and response.json["error"]["id"] == "invalid_json"
    assert db.scalar(select(func.count(Action.id))) == 0


def test_a_device_with_a_nul_in_its_label_is_refused(client: FlaskClient, sms: Sms,
                                                     db: Session) -> None:
    _join(client, sms)
    response = _add_device(client, {"subscription": _subscription(), "label": "tel\x00"})
    assert response.status_code == 400 and response.json["ok"] is False
    assert db.scalar(select(func.count(PushSubscription.id))) == 0

