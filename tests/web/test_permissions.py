"""Who may make, start and end which actions (core.permissions), through the app as it is used:
API keys with scopes, a municipality's keys and officers kept to their own municipality, the
console and the municipal pages asking the same rules, and the CAP feed never showing what a
municipality tried to send as an alert."""

# ruff: noqa: F811 (the make_token fixture is imported from test_api)
from __future__ import annotations

from datetime import UTC, datetime

import pytest
import redis
from flask.testing import FlaskClient
from pyproj import Geod
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.db import transaction
from core.models import (
    Action,
    ActionStatus,
    AuditEvent,
    Meldkamer,
    Municipality,
    Organisation,
    OrganisationKind,
    Role,
    User,
)
from core.permissions import (
    SCOPES,
    Actor,
    NotPermitted,
    actor_for_organisation,
    actor_for_user,
)
from core.seed import DEMO_PASSWORD
from outbound.actions import (
    ActionDraft,
    create_action,
    discard_draft,
    end_and_queue,
    start_for_request,
)
from outbound.inquiry import update_and_queue
from tests.web.helpers import csrf_token, login, login_as
from tests.web.test_api import MN, MakeToken, bearer, create, make_token  # noqa: F401
from tests.web.test_cap import FEED, entries

UTRECHT = "Gemeente Utrecht"
CENTRE = {"type": "circle", "lat": 52.0907, "lon": 5.1214, "radius_m": 1500}
INQUIRY = {"kind": "neighbourhood_inquiry", "title": {"nl": "Wie zag de inbraak?"},
           "description": {"nl": "Gisteravond tussen 22 en 23 uur, Biltstraat."},
           "area": CENTRE}
GEOD = Geod(ellps="WGS84")


def unrestricted(organisation: Organisation) -> Actor:
    """Someone who may make anything for ORGANISATION: how a draft from before these rules
    came about (any key could then make any kind, nationally)."""
    return Actor(organisation.id, organisation.kind, frozenset(SCOPES), any_meldkamer=True,
                 unrestricted=True, name="api:before")


def organisation(db: Session, name: str) -> Organisation:
    return db.scalar(select(Organisation).where(Organisation.name == name))


def count_actions(db: Session) -> int:
    db.expire_all()
    return db.scalar(select(func.count(Action.id))) or 0


# --- point 3: a municipality's key ---------------------------------------------------------

@pytest.mark.parametrize(("body", "field"), [
    ({"kind": "suspect", "area": CENTRE}, "kind"),
    ({"kind": "vehicle", "area": CENTRE}, "kind"),
    ({"kind": "missing_person", "area": CENTRE}, "kind"),
    ({"kind": "amber", "area": CENTRE}, "kind"),
    ({"kind": "amber", "national": True}, "kind"),
    ({"kind": "amber", "national": True, "start": True}, "kind"),
])
def test_a_municipality_key_makes_no_search_action_and_no_amber_alert(
        client: FlaskClient, db: Session, make_token: MakeToken, body: dict,
        field: str) -> None:
    plain = make_token(UTRECHT, "Gemeente-app")
    # naming its region's meldkamer is how such a key made any action before the rules
    response = create(client, plain, {"title": {"nl": "Vermist kind"}, "meldkamer": "MN",
                                      **body})
    assert response.status_code == 403
    error = response.get_json()["error"]
    assert error["id"] == "action_not_permitted"
    assert error["fields"] == {field: "Deze soort actie valt buiten uw bevoegdheid."}
    assert "neighbourhood_inquiry preventive" in error["details"][field]
    assert count_actions(db) == 0
    english = create(client, plain, {"title": {"nl": "x"}, **body},
                     **{"Accept-Language": "en"}).get_json()["error"]
    assert english["fields"] == {field: "This kind of action is outside your permissions."}


def test_the_cap_feed_never_shows_an_alert_a_municipality_key_tried_to_create(
        client: FlaskClient, db: Session, make_token: MakeToken) -> None:
    plain = make_token(UTRECHT, "Gemeente-app")
    amber = {"kind": "amber", "title": {"nl": "Vermist meisje (8)"}, "national": True,
             "start": True, "meldkamer": "MN"}
    for body in (amber, {**amber, "national": False, "area": CENTRE},
                 {**amber, "kind": "suspect", "national": False, "area": CENTRE}):
        assert create(client, plain, body).status_code == 403
    assert entries(client) == {}
    assert client.get(FEED).get_data(as_text=True).count("<entry") == 0
    assert count_actions(db) == 0
    refused = db.scalars(select(AuditEvent).where(AuditEvent.verb == "forbidden")).all()
    assert [(e.actor, e.details["error"]) for e in refused] == \
        [("api:Gemeente-app", "action_not_permitted")] * 3
    assert "may not make amber actions" in refused[0].details["reasons"]["kind"]


def test_a_municipality_key_makes_inquiries_for_its_own_meldkamer_only(
        client: FlaskClient, make_token: MakeToken) -> None:
    plain = make_token(UTRECHT, "Gemeente-app")
    made = create(client, plain, INQUIRY)
    assert made.status_code == 201, made.get_json()
    assert made.get_json()["meldkamer"] == "MN"  # Utrecht's safety region's
    assert made.get_json()["urgency"] == "normal"
    other = create(client, plain, {**INQUIRY, "meldkamer": "RT"})
    assert other.status_code == 403
    assert other.get_json()["error"]["fields"] == {
        "meldkamer": "Deze organisatie maakt alleen acties van haar eigen meldkamer."}


def test_a_municipality_cannot_make_its_messages_urgent_to_skip_quiet_hours(
        client: FlaskClient, db: Session, make_token: MakeToken) -> None:
    plain = make_token(UTRECHT, "Gemeente-app")
    for kind in ("neighbourhood_inquiry", "preventive"):
        response = create(client, plain, {**INQUIRY, "kind": kind, "urgency": "urgent",
                                          "meldkamer": "MN"})
        assert response.status_code == 403
        assert list(response.get_json()["error"]["fields"]) == ["urgency"]
    assert count_actions(db) == 0
    police = make_token(MN, "GMS", ("preventive",))
    assert create(client, police, {**INQUIRY, "kind": "preventive",
                                   "urgency": "urgent"}).status_code == 201


def test_a_police_key_gets_a_national_amber_alert_only_when_granted(
        client: FlaskClient, make_token: MakeToken) -> None:
    amber = {"kind": "amber", "title": {"nl": "Vermist meisje (8)"}, "national": True}
    default = make_token(MN, "GMS")
    refused = create(client, default, amber)
    assert refused.status_code == 403
    assert refused.get_json()["error"]["fields"] == {
        "national": "Een landelijke AMBER Alert valt buiten uw bevoegdheid."}
    assert create(client, default, {**amber, "national": False,
                                    "area": CENTRE}).status_code == 201
    granted = make_token(MN, "Landelijk", ("amber", "amber_national"))
    assert create(client, granted, amber).status_code == 201
    assert create(client, granted, {**INQUIRY, "kind": "suspect"}).status_code == 403


def test_a_key_cannot_start_or_end_its_organisations_actions_outside_its_scopes(
        client: FlaskClient, db: Session, make_token: MakeToken, redis_client: redis.Redis,
        sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        police = organisation(session, MN)
        national = create_action(session, ActionDraft(
            kind="amber", title_nl="Vermist kind", meldkamer_code="MN", national=True),
            actor_for_organisation(police)).id
        suspect = create_action(session, ActionDraft(
            kind="suspect", title_nl="Man in rode jas", meldkamer_code="MN", lat=52.09,
            lon=5.12, radius_m=1000), actor_for_organisation(police)).id
    start_for_request(sessions, redis_client, suspect, now=datetime.now(UTC),
                      who=actor_for_organisation(police))
    vehicles = make_token(MN, "Kentekens", ("vehicle",))
    started = client.post(f"/api/v1/actions/{national}/start", headers=bearer(vehicles))
    assert started.status_code == 403
    assert started.get_json()["error"]["fields"] == {
        "kind": "Deze soort actie valt buiten uw bevoegdheid."}
    regional = make_token(MN, "GMS")
    assert client.post(f"/api/v1/actions/{national}/start",
                       headers=bearer(regional)).status_code == 403  # no amber_national
    ended = client.post(f"/api/v1/actions/{suspect}/end", json={"outcome": "found"},
                        headers=bearer(vehicles))
    assert ended.status_code == 403
    db.expire_all()
    assert db.get(Action, national).status == ActionStatus.DRAFT
    assert db.get(Action, suspect).status == ActionStatus.ACTIVE
    assert client.post(f"/api/v1/actions/{suspect}/end", json={"outcome": "found"},
                       headers=bearer(regional)).status_code == 200


def test_a_municipality_draft_from_before_the_rules_cannot_be_started(
        client: FlaskClient, db: Session, make_token: MakeToken) -> None:
    """Before the rules a municipality key could make a national AMBER Alert; such a draft
    stays a draft, and stays out of the CAP feed."""
    utrecht = organisation(db, UTRECHT)
    draft = create_action(db, ActionDraft(kind="amber", title_nl="Vermist kind",
                                          meldkamer_code="MN", national=True),
                          unrestricted(utrecht))
    db.commit()
    response = client.post(f"/api/v1/actions/{draft.id}/start",
                           headers=bearer(make_token(UTRECHT, "Gemeente-app")))
    assert response.status_code == 403
    db.expire_all()
    assert db.get(Action, draft.id).status == ActionStatus.DRAFT
    assert entries(client) == {}


def test_the_service_refuses_another_organisations_action_whoever_calls_it(
        app, db: Session, sessions: sessionmaker[Session], redis_client: redis.Redis) -> None:
    police, utrecht = organisation(db, MN), organisation(db, UTRECHT)
    theirs = create_action(db, ActionDraft(
        kind="neighbourhood_inquiry", title_nl="Van de politie", meldkamer_code="MN",
        lat=52.09, lon=5.12, radius_m=500), actor_for_organisation(police)).id
    db.commit()
    officer = actor_for_user(db.scalar(select(User).where(User.email == "gemeente@example.org")))
    assert officer.organisation_id == utrecht.id
    with pytest.raises(NotPermitted) as refused:
        start_for_request(sessions, redis_client, theirs, now=datetime.now(UTC), who=officer)
    assert refused.value.errors == {"organisation": "Deze actie is van een andere organisatie."}
    start_for_request(sessions, redis_client, theirs, now=datetime.now(UTC),
                      who=actor_for_organisation(police))
    with pytest.raises(NotPermitted):
        end_and_queue(sessions, redis_client, theirs, "cancelled", None,
                      now=datetime.now(UTC), who=officer)
    with pytest.raises(NotPermitted):
        update_and_queue(sessions, redis_client, theirs, "Dank, de dader is bekend.", None,
                         now=datetime.now(UTC), who=officer)
    db.expire_all()
    action = db.get(Action, theirs)
    assert action.status == ActionStatus.ACTIVE and action.update_nl is None


# --- point 4: inside the municipality --------------------------------------------------------

def _edge(db: Session, side: str) -> tuple[float, float]:
    """The (lon, lat) of Utrecht's outermost boundary vertex on SIDE (west, east, north, south):
    all of the municipality lies on the other side of it."""
    boundary = db.scalar(select(Municipality.boundary).where(Municipality.code == "GM0344"))
    rings = boundary["coordinates"] if boundary["type"] == "Polygon" else \
        [ring for polygon in boundary["coordinates"] for ring in polygon]
    points = [tuple(p[:2]) for ring in rings for p in ring]
    pick = {"west": lambda p: p[0], "east": lambda p: -p[0], "south": lambda p: p[1],
            "north": lambda p: -p[1]}[side]
    return min(points, key=pick)


AZIMUTH = {"north": 0.0, "east": 90.0, "south": 180.0, "west": 270.0}


def _circle_beyond(db: Session, side: str, reach_m: float) -> dict:
    """A circle around the outermost vertex on SIDE reaching REACH_M metres beyond it:
    its farthest point is REACH_M (geodesic, WGS84) from the municipality."""
    lon, lat = _edge(db, side)
    return {"type": "circle", "lat": lat, "lon": lon, "radius_m": reach_m}


def _square_beyond(db: Session, side: str, reach_m: float) -> dict:
    """A square whose outer edge lies REACH_M metres beyond the outermost vertex on SIDE."""
    lon, lat = _edge(db, side)
    out_lon, out_lat, _ = GEOD.fwd(lon, lat, AZIMUTH[side], reach_m)
    in_lon, in_lat, _ = GEOD.fwd(lon, lat, (AZIMUTH[side] + 180) % 360, 2000)
    across = (AZIMUTH[side] + 90) % 360
    corners = []
    for point in ((out_lon, out_lat), (in_lon, in_lat)):
        for sign in (1, -1):
            x, y, _ = GEOD.fwd(*point, across, sign * 100)
            corners.append([x, y])
    ring = [corners[0], corners[1], corners[3], corners[2], corners[0]]
    return {"type": "Polygon", "coordinates": [ring]}


@pytest.mark.parametrize(("side", "reach_m", "allowed"), [
    ("west", 450, True), ("west", 600, False),
    ("east", 450, True), ("east", 600, False),
    ("north", 450, True), ("north", 600, False),
    ("south", 450, True), ("south", 600, False),
])
@pytest.mark.parametrize("shape", ["circle", "square"])
def test_a_municipality_keys_area_stays_within_500_m_of_its_boundary_in_metres(
        client: FlaskClient, db: Session, make_token: MakeToken, side: str, reach_m: float,
        allowed: bool, shape: str) -> None:
    """500 m is measured in metres in every direction: a margin in degrees of latitude would
    refuse 450 m east or west (0.0045° of longitude is ~310 m here), one in degrees of
    longitude would allow 600 m north or south."""
    area = (_circle_beyond if shape == "circle" else _square_beyond)(db, side, reach_m)
    response = create(client, make_token(UTRECHT, "Gemeente-app"), {**INQUIRY, "area": area})
    if allowed:
        assert response.status_code == 201, response.get_json()
        return
    assert response.status_code == 403
    error = response.get_json()["error"]
    assert error["id"] == "area_outside_municipality"
    assert error["fields"] == {"area": "Het gebied moet binnen uw gemeente liggen; het mag "
                                       "hoogstens 500 meter over de grens gaan."}
    assert "Utrecht (GM0344)" in error["details"]["area"]


@pytest.mark.parametrize("area", [
    {"type": "circle", "lat": 52.0907, "lon": 5.1214, "radius_m": 300000},  # the whole country
    {"type": "circle", "lat": 52.3731, "lon": 4.8922, "radius_m": 500},  # Amsterdam
    {"type": "Polygon", "coordinates": [[[5.00, 52.00], [5.20, 52.00], [5.20, 52.15],
                                         [5.00, 52.15], [5.00, 52.00]]]},  # with Nieuwegein
    {"type": "MultiPolygon", "coordinates": [
        [[[5.10, 52.08], [5.12, 52.08], [5.12, 52.09], [5.10, 52.08]]],
        [[[4.88, 52.37], [4.90, 52.37], [4.90, 52.38], [4.88, 52.37]]]]},  # and Amsterdam
])
def test_a_municipality_key_cannot_reach_beyond_its_municipality(
        client: FlaskClient, db: Session, make_token: MakeToken, area: dict) -> None:
    response = create(client, make_token(UTRECHT, "Gemeente-app"),
                      {**INQUIRY, "area": area, "meldkamer": "MN"})
    assert response.status_code == 403
    assert response.get_json()["error"]["id"] == "area_outside_municipality"
    assert count_actions(db) == 0


def test_the_police_is_not_bounded_by_a_municipality(client: FlaskClient,
                                                     make_token: MakeToken) -> None:
    wide = {"type": "circle", "lat": 52.0907, "lon": 5.1214, "radius_m": 30000}
    response = create(client, make_token(MN, "GMS", ("neighbourhood_inquiry",)),
                      {**INQUIRY, "area": wide})
    assert response.status_code == 201


def test_an_officers_form_says_where_the_area_must_lie_and_refuses_beyond_it(
        client: FlaskClient, db: Session) -> None:
    login_as(client, "municipality_officer")
    path = "/gemeente/buurtonderzoek/nieuw"
    page = client.get(path).get_data(as_text=True)
    assert ("Het gebied moet binnen de gemeente Utrecht liggen; het mag hoogstens 500 meter "
            "over de grens gaan.") in page
    data = {"csrf_token": csrf_token(client, path), "title_nl": "Inbraak Biltstraat",
            "text_nl": "Wie zag iets?", "lat": "52.0907", "lon": "5.1214",
            "radius_m": "300000", "polygon": ""}
    refused = client.post(path, data=data)
    assert refused.status_code == 400
    assert "hoogstens 500 meter over de grens gaan." in refused.get_data(as_text=True)
    assert count_actions(db) == 0
    english = client.post(path + "?lang=en", data={**data, "csrf_token": csrf_token(client,
                                                                                    path)})
    text = english.get_data(as_text=True)
    assert "The area must lie within your municipality" in text
    assert "must lie within the municipality of Utrecht" in text
    assert client.post(path, data={**data, "radius_m": "1500"}).status_code == 302


def test_an_officer_cannot_send_a_draft_from_before_the_rules_reaching_the_country(
        client: FlaskClient, db: Session, redis_client: redis.Redis) -> None:
    utrecht = organisation(db, UTRECHT)
    draft = create_action(db, ActionDraft(kind="preventive", title_nl="Let op",
                                          meldkamer_code="MN", lat=52.09, lon=5.12,
                                          radius_m=300000), unrestricted(utrecht))
    db.commit()
    login_as(client, "municipality_officer")
    page = f"/gemeente/{draft.id}"
    response = client.post(f"{page}/versturen", data={"csrf_token": csrf_token(client, page)},
                           follow_redirects=True)
    assert "hoogstens 500 meter over de grens gaan." in response.get_data(as_text=True)
    db.expire_all()
    assert db.get(Action, draft.id).status == ActionStatus.DRAFT
    event = db.scalar(select(AuditEvent).where(AuditEvent.verb == "forbidden"))
    assert (event.object_id, event.details["error"]) == (str(draft.id),
                                                         "area_outside_municipality")


# --- the console asks the same rules ----------------------------------------------------------

@pytest.fixture
def municipal_centralist(db: Session) -> str:
    """A centralist of a municipality's organisation, which an administrator gave a meldkamer
    of its own: the role opens the console, the organisation's kind still decides what may
    be made there."""
    from werkzeug.security import generate_password_hash

    utrecht = organisation(db, UTRECHT)
    utrecht.meldkamer = db.scalar(select(Meldkamer).where(Meldkamer.code == "MN"))
    db.add(User(email="centralist@utrecht.example.org", name="Centralist Utrecht",
                role=Role.CENTRALIST, organisation=utrecht,
                password_hash=generate_password_hash(DEMO_PASSWORD)))
    db.commit()
    return "centralist@utrecht.example.org"


def test_the_console_asks_the_same_rule_as_the_api(client: FlaskClient, db: Session,
                                                   municipal_centralist: str) -> None:
    assert login(client, municipal_centralist).status_code == 302
    form = client.get("/console/actions/new").get_data(as_text=True)
    assert 'value="amber"' not in form and 'id="national"' not in form
    data = {"csrf_token": csrf_token(client, "/console/actions/new"), "kind": "amber",
            "national": "y", "urgency": "urgent", "title_nl": "Vermist kind", "lat": "",
            "lon": "", "radius_m": "", "polygon": "", "meldkamer": "MN"}
    response = client.post("/console/actions/new", data=data,
                           content_type="multipart/form-data")
    assert response.status_code == 400
    assert "Deze soort actie valt buiten uw bevoegdheid." in response.get_data(as_text=True)
    assert count_actions(db) == 0
    event = db.scalar(select(AuditEvent).where(AuditEvent.verb == "forbidden"))
    assert event.actor == municipal_centralist and event.details["reasons"]["kind"]


# --- throwing a draft away is the service's to allow -----------------------------------------

def test_the_service_discards_only_a_draft_its_caller_may_manage(app, db: Session) -> None:
    police = organisation(db, MN)
    draft = create_action(db, ActionDraft(
        kind="neighbourhood_inquiry", title_nl="Van de politie", meldkamer_code="MN",
        lat=52.09, lon=5.12, radius_m=500), actor_for_organisation(police)).id
    db.commit()
    officer = actor_for_user(db.scalar(select(User).where(User.email == "gemeente@example.org")))
    with pytest.raises(NotPermitted) as refused:
        discard_draft(db, draft, officer)
    assert refused.value.errors == {"organisation": "Deze actie is van een andere organisatie."}
    discard_draft(db, draft, actor_for_organisation(police))
    db.commit()
    assert db.get(Action, draft) is None
    assert db.scalar(select(AuditEvent.actor).where(AuditEvent.verb == "discard")) == "cli"


@pytest.fixture
def fire_centralist(db: Session) -> tuple[str, int]:
    """A centralist of a fire brigade (whose kind makes preventive messages only) and an
    inquiry draft of that brigade from before the rules."""
    from werkzeug.security import generate_password_hash

    fire = Organisation(name="Brandweer Midden", kind=OrganisationKind.FIRE,
                        meldkamer=db.scalar(select(Meldkamer).where(Meldkamer.code == "MN")))
    db.add(User(email="brandweer@example.org", name="Centralist Brandweer",
                role=Role.CENTRALIST, organisation=fire,
                password_hash=generate_password_hash(DEMO_PASSWORD)))
    db.flush()
    draft = create_action(db, ActionDraft(kind="neighbourhood_inquiry", title_nl="Wie zag het?",
                                          meldkamer_code="MN", lat=52.09, lon=5.12,
                                          radius_m=500), unrestricted(fire))
    db.commit()
    return "brandweer@example.org", draft.id


def test_a_draft_is_thrown_away_only_by_whom_the_rules_let_manage_it(
        client: FlaskClient, db: Session, fire_centralist: tuple[str, int]) -> None:
    email, draft = fire_centralist
    assert login(client, email).status_code == 302
    assert client.get(f"/gemeente/{draft}").status_code == 200  # their organisation's
    token = csrf_token(client, f"/gemeente/{draft}")
    response = client.post(f"/gemeente/{draft}/verwijderen", data={"csrf_token": token})
    assert response.status_code == 302
    assert "Deze soort actie valt buiten uw bevoegdheid." in \
        client.get(f"/gemeente/{draft}").get_data(as_text=True)
    db.expire_all()
    assert db.get(Action, draft) is not None
    event = db.scalar(select(AuditEvent).where(AuditEvent.verb == "forbidden"))
    assert (event.actor, event.object_id) == (email, str(draft))
    assert "may not make neighbourhood_inquiry" in event.details["reasons"]["kind"]


# --- keys and their scopes -------------------------------------------------------------------

def test_scopes_never_exceed_what_the_organisations_kind_allows(app, db: Session) -> None:
    from core.tokens import TokenInvalid, create_token

    utrecht = organisation(db, UTRECHT)
    with pytest.raises(TokenInvalid) as refused:
        create_token(db, utrecht, "Te veel", now=datetime.now(UTC), scopes=["amber_national"])
    assert refused.value.errors == {
        "scopes": "Deze soort organisatie kan niet alle gekozen bevoegdheden krijgen."}
    with pytest.raises(TokenInvalid):
        create_token(db, utrecht, "Onzin", now=datetime.now(UTC), scopes=["everything"])
    fire = Organisation(name="Brandweer Utrecht", kind=OrganisationKind.FIRE)
    db.add(fire)
    db.flush()
    token, _plain = create_token(db, fire, "Brandweer", now=datetime.now(UTC))
    assert token.scopes == "preventive"
    assert db.scalar(select(AuditEvent.details).where(
        AuditEvent.verb == "create", AuditEvent.object_type == "api_token"))["scopes"] \
        == "preventive"
