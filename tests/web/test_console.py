"""The centralist console end to end: the real app, the test database and a real Redis."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
import redis
from flask.testing import FlaskClient
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from core import participants
from core.models import (
    Action,
    ActionStatus,
    AuditEvent,
    CallDirection,
    CallRecord,
    Channel,
    Delivery,
    DeliveryPurpose,
    DeliveryStatus,
    LocationKind,
    Meldkamer,
    Organisation,
    OrganisationKind,
    Role,
    Tip,
    User,
)
from core.seed import DEMO_PASSWORD
from core.settings import Settings
from core.targeting import preview, rule_for
from outbound.fanout import area_of
from outbound.progress import forecast
from outbound.queues import OUTBOX_QUEUE, queue_names
from tests.web.helpers import csrf_token, login, login_as

UTRECHT = (52.0907, 5.1214)
NOW = datetime.now(UTC)
SQUARE = {"type": "Polygon", "coordinates": [[[5.10, 52.08], [5.14, 52.08], [5.14, 52.10],
                                              [5.10, 52.10], [5.10, 52.08]]]}


def action_form(**overrides: object) -> dict[str, object]:
    """A complete, valid new-action form around Utrecht centre."""
    form: dict[str, object] = {
        "kind": "suspect", "urgency": "urgent", "meldkamer": "MN",
        "title_nl": "Man in rode jas", "title_en": "Man in red coat",
        "description_nl": "Ongeveer 30 jaar, kort haar.", "description_en": "About 30.",
        "instruction_nl": "Niet benaderen, bel 112.", "instruction_en": "Do not approach.",
        "lat": "52.0907", "lon": "5.1214", "radius_m": "1500", "polygon": ""}
    form.update(overrides)
    return form


def create(client: FlaskClient, **overrides: object):
    """POST the new-action form; follow nothing."""
    data = action_form(**overrides)
    data["csrf_token"] = csrf_token(client, "/console/actions/new")
    return client.post("/console/actions/new", data=data, content_type="multipart/form-data")


def created_id(response) -> int:
    assert response.status_code == 302, response.get_data(as_text=True)
    return int(re.search(r"/console/actions/(\d+)$", response.headers["Location"]).group(1))


def post(client: FlaskClient, path: str, data: dict[str, str] | None = None, page: str = ""):
    token = csrf_token(client, page or path.rsplit("/", 1)[0])
    return client.post(path, data={"csrf_token": token, **(data or {})})


@pytest.fixture
def centralist(client: FlaskClient) -> FlaskClient:
    return login_as(client, "centralist")


@pytest.fixture
def people(db: Session) -> list[int]:
    """Six verified participants around Utrecht centre on different channels, one far away."""
    specs = [(["sms"], UTRECHT), (["voice", "sms"], (52.0920, 5.1180)),
             (["push"], (52.0890, 5.1250)), (["email", "sms"], (52.0950, 5.1100)),
             (["voice"], (52.0850, 5.1300)), (["sms"], (51.9225, 4.4792))]  # the last: Rotterdam
    ids = []
    for number, (channels, (lat, lon)) in enumerate(specs):
        phone = f"+3169007{number:04d}"
        sent = participants.register(db, phone, secret="s", now=NOW, channels=channels,
                                     email="p@example.org" if "email" in channels else None)
        person = participants.verify(db, phone, sent.code, secret="s", now=NOW)
        participants.add_location(db, person, LocationKind.HOME, lat=lat, lon=lon, now=NOW)
        ids.append(person.id)
    db.commit()
    return ids


@pytest.fixture
def other_centralist(db: Session) -> str:
    """A centralist of another police organisation (Rotterdam)."""
    org = Organisation(name="Politie Rotterdam", kind=OrganisationKind.POLICE,
                       meldkamer=db.scalar(select(Meldkamer).where(Meldkamer.code == "RT")))
    db.add(User(email="rotterdam@example.org", name="Centralist Rotterdam", role=Role.CENTRALIST,
                password_hash=generate_password_hash(DEMO_PASSWORD), organisation=org))
    db.commit()
    return "rotterdam@example.org"


def queued_jobs(connection: redis.Redis) -> int:
    return sum(Queue(name, connection=connection, serializer=JSONSerializer).count
               for name in queue_names())


# --- list and create ------------------------------------------------------------------

def test_the_action_list_shows_the_own_organisations_actions_newest_first(centralist, db):
    first, second = created_id(create(centralist)), created_id(create(centralist, title_nl="B"))
    page = centralist.get("/console/").get_data(as_text=True)
    assert 'id="new-action"' in page
    assert page.index(f'id="action-row-{second}"') < page.index(f'id="action-row-{first}"')
    drafts = centralist.get("/console/?status=draft").get_data(as_text=True)
    assert f'id="action-row-{first}"' in drafts
    assert f'id="action-row-{first}"' not in centralist.get("/console/?status=active").get_data(
        as_text=True)


def test_a_circle_action_is_stored_as_typed(centralist, db):
    action = db.get(Action, created_id(create(centralist)))
    assert (action.status, action.kind.value, action.meldkamer.code) == (
        ActionStatus.DRAFT, "suspect", "MN")
    assert (action.center_lat, action.center_lon, action.radius_m) == (52.0907, 5.1214, 1500)
    assert action.title_en == "Man in red coat" and action.creator.email == "centralist@example.org"
    assert action.organisation.name == "Politie Midden-Nederland"
    assert db.scalar(select(AuditEvent).where(AuditEvent.verb == "create",
                                              AuditEvent.object_id == str(action.id)))


def test_a_form_sent_twice_makes_one_draft(centralist, db):
    page = centralist.get("/console/actions/new").get_data(as_text=True)
    submission = re.search(r'name="submission" value="([0-9a-f]{32})"', page).group(1)
    before = db.scalar(select(func.count(Action.id)))
    data = {**action_form(), "csrf_token": csrf_token(centralist, "/console/actions/new"),
            "submission": submission}
    first = created_id(centralist.post("/console/actions/new", data=dict(data),
                                       content_type="multipart/form-data"))
    again = centralist.post("/console/actions/new", data=dict(data),
                            content_type="multipart/form-data")
    assert created_id(again) == first
    assert db.scalar(select(func.count(Action.id))) == before + 1
    shown = centralist.get(again.headers["Location"]).get_data(as_text=True)
    assert "Dit formulier was al verstuurd; er is geen tweede concept gemaakt." in shown
    other = centralist.get("/console/actions/new").get_data(as_text=True)
    assert submission not in other, "every form shown gets an id of its own"
    assert created_id(create(centralist)) != first


def test_a_polygon_action_is_stored_as_drawn(centralist, db):
    response = create(centralist, lat="", lon="", radius_m="", polygon=json.dumps(SQUARE))
    action = db.get(Action, created_id(response))
    assert action.polygon["type"] == "Polygon" and action.center_lat is None
    assert action.polygon["coordinates"][0][0] == [5.10, 52.08]


def test_a_comma_as_decimal_separator_is_understood(centralist, db):
    action = db.get(Action, created_id(create(centralist, lat="52,0907", lon="5,1214")))
    assert (action.center_lat, action.center_lon) == (52.0907, 5.1214)


def test_field_errors_are_named_and_everything_typed_stays(centralist, db):
    before = db.scalar(select(func.count(Action.id)))
    response = create(centralist, title_nl="", radius_m="0", description_nl="Rode <b>jas</b>",
                      instruction_en="Call us", lon="vijf")
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'id="title_nl-error"' in page and "Vul een titel in." in page
    assert 'id="area-lon-error"' in page and "Geef een getal." in page
    assert "Rode &lt;b&gt;jas&lt;/b&gt;" in page and "Call us</textarea>" in page
    assert 'value="52.0907"' in page and 'name="radius_m"' in page and 'value="0"' in page
    assert db.scalar(select(func.count(Action.id))) == before


def test_a_polygon_survives_an_error_elsewhere(centralist):
    page = create(centralist, title_nl="", lat="", lon="", polygon=json.dumps(SQUARE)).get_data(
        as_text=True)
    assert "Vul een titel in." in page and "5.14, 52.08" in page.replace("&#34;", '"')


def test_a_bad_area_is_explained(centralist):
    page = create(centralist, radius_m="400000").get_data(as_text=True)
    assert 'id="area-error"' in page and "De straal is te groot: hoogstens 300 km." in page


def test_only_an_amber_alert_may_be_national(centralist, db):
    refused = create(centralist, national="y")
    assert "Alleen een AMBER Alert kan landelijk zijn." in refused.get_data(as_text=True)
    action = db.get(Action, created_id(create(centralist, kind="amber", national="y", lat="",
                                              lon="")))
    assert action.national and action.kind.value == "amber" and action.center_lat is None


def test_the_form_preselects_the_own_meldkamer_and_offers_no_other(centralist):
    page = centralist.get("/console/actions/new").get_data(as_text=True)
    options = re.findall(r'<option value="([A-Z]+)"', page)
    assert options == ["MN"] and 'value="MN" selected' in page


def test_a_centralist_cannot_choose_another_meldkamer(centralist, db):
    before = db.scalar(select(func.count(Action.id)))
    page = create(centralist, meldkamer="RT").get_data(as_text=True)
    assert "Deze organisatie maakt alleen acties van haar eigen meldkamer." in page
    assert db.scalar(select(func.count(Action.id))) == before


def test_an_admin_may_choose_any_meldkamer(client, db):
    login_as(client, "admin")
    page = client.get("/console/actions/new").get_data(as_text=True)
    assert len(re.findall(r'<option value="([A-Z]+)"', page)) == 10
    action = db.get(Action, created_id(create(client, meldkamer="RT")))
    assert action.meldkamer.code == "RT"


def test_inquiry_kinds_are_not_made_here(centralist):
    page = create(centralist, kind="neighbourhood_inquiry").get_data(as_text=True)
    assert 'id="kind-error"' in page


# --- who may see what -----------------------------------------------------------------

def test_a_municipality_officer_is_refused(client):
    login_as(client, "municipality_officer")
    assert client.get("/console/").status_code == 403
    assert client.get("/console/actions/new").status_code == 403


def test_the_console_asks_for_a_login(client):
    assert client.get("/console/").status_code == 302


def test_another_organisations_action_does_not_exist_for_a_centralist(centralist, db,
                                                                      other_centralist):
    action_id = created_id(create(centralist))
    centralist.post("/logout", data={"csrf_token": csrf_token(centralist, "/")})
    login(centralist, other_centralist)
    assert f"action-row-{action_id}" not in centralist.get("/console/").get_data(as_text=True)
    assert centralist.get(f"/console/actions/{action_id}").status_code == 404
    assert centralist.get(f"/console/actions/{action_id}/progress.json").status_code == 404
    token = csrf_token(centralist, "/console/")
    for verb in ("start", "end"):
        answer = centralist.post(f"/console/actions/{action_id}/{verb}",
                                 data={"csrf_token": token, "outcome": "found"})
        assert answer.status_code == 404
    assert db.get(Action, action_id).status == ActionStatus.DRAFT


def test_an_admin_sees_every_organisations_actions(centralist, client, db):
    action_id = created_id(create(centralist))
    centralist.post("/logout", data={"csrf_token": csrf_token(centralist, "/")})
    login_as(client, "admin")
    assert client.get(f"/console/actions/{action_id}").status_code == 200


def test_start_needs_a_csrf_token(centralist, db):
    action_id = created_id(create(centralist))
    assert centralist.post(f"/console/actions/{action_id}/start").status_code == 400
    assert db.get(Action, action_id).status == ActionStatus.DRAFT


# --- preview and start ----------------------------------------------------------------

def test_the_preview_counts_what_targeting_counts(centralist, db, people, settings):
    action_id = created_id(create(centralist))
    page = centralist.get(f"/console/actions/{action_id}").get_data(as_text=True)
    action = db.get(Action, action_id)
    expected = preview(db, area_of(action), rule_for(action.kind, action.urgency), NOW)
    assert expected.participants == 5 and expected.messages == 6
    for channel, number in expected.by_channel.items():
        row = re.search(rf'id="preview-channel-{channel.value}".*?data-count>(\d+)<', page, re.S)
        assert int(row.group(1)) == number
    assert f"{expected.participants} deelnemers, {expected.messages} berichten." in page
    assert "Utrecht" in page and 'id="preview-sms-nl"' in page and 'id="start-action"' in page
    seconds = forecast(settings, expected.by_channel)
    assert seconds[Channel.SMS] == expected.by_channel[Channel.SMS] / settings.sms_rate


def test_a_polygon_preview_counts_what_targeting_counts(centralist, db, people):
    action_id = created_id(create(centralist, lat="", lon="", polygon=json.dumps(SQUARE)))
    page = centralist.get(f"/console/actions/{action_id}").get_data(as_text=True)
    action = db.get(Action, action_id)
    expected = preview(db, area_of(action), rule_for(action.kind, action.urgency), NOW)
    assert f"{expected.participants} deelnemers, {expected.messages} berichten." in page


def test_starting_queues_batches_and_a_second_start_does_nothing(centralist, db, people,
                                                                 redis_client):
    action_id = created_id(create(centralist))
    response = post(centralist, f"/console/actions/{action_id}/start",
                    page=f"/console/actions/{action_id}")
    assert response.status_code == 302
    assert "De actie is gestart." in centralist.get(response.headers["Location"]).get_data(
        as_text=True)
    deliveries = db.scalar(select(func.count(Delivery.id)).where(Delivery.action_id == action_id))
    jobs = queued_jobs(redis_client)
    assert deliveries == 6 and jobs >= 3  # voice, sms and push batches
    assert Queue("sms-urgent", connection=redis_client, serializer=JSONSerializer).count == 1
    again = post(centralist, f"/console/actions/{action_id}/start",
                 page=f"/console/actions/{action_id}")
    page = centralist.get(again.headers["Location"]).get_data(as_text=True)
    assert "Deze actie was al gestart; er is niets opnieuw verstuurd." in page
    assert queued_jobs(redis_client) == jobs
    assert db.scalar(select(func.count(Delivery.id)).where(
        Delivery.action_id == action_id)) == deliveries
    db.expire_all()
    assert db.get(Action, action_id).status == ActionStatus.ACTIVE
    assert 'id="delivery-table"' in page and 'id="end-form"' in page


def test_a_national_alert_starts_at_once_and_a_worker_writes_its_outbox(centralist, db,
                                                                       redis_client):
    action_id = created_id(create(centralist, kind="amber", national="y", lat="", lon=""))
    response = post(centralist, f"/console/actions/{action_id}/start",
                    page=f"/console/actions/{action_id}")
    assert "De actie is gestart." in centralist.get(response.headers["Location"]).get_data(
        as_text=True)
    outbox = Queue(OUTBOX_QUEUE, connection=redis_client, serializer=JSONSerializer)
    assert outbox.job_ids == [f"outbox-{action_id}"]
    db.expire_all()
    assert db.get(Action, action_id).status == ActionStatus.ACTIVE
    post(centralist, f"/console/actions/{action_id}/start", page=f"/console/actions/{action_id}")
    assert outbox.count == 1


# --- live -----------------------------------------------------------------------------

@pytest.fixture
def started(centralist, db, people) -> int:
    action_id = created_id(create(centralist))
    post(centralist, f"/console/actions/{action_id}/start", page=f"/console/actions/{action_id}")
    return action_id


def test_progress_follows_the_deliveries(centralist, db, started):
    data = centralist.get(f"/console/actions/{started}/progress.json").get_json()
    assert data["total"] == 6 and data["status"] == "active"
    assert data["channels"]["sms"]["counts"] == {"queued": 3}
    db.execute(update(Delivery).where(Delivery.action_id == started,
                                      Delivery.channel == Channel.SMS)
               .values(status=DeliveryStatus.DELIVERED, sent_at=datetime.now(UTC)))
    db.execute(update(Delivery).where(Delivery.action_id == started,
                                      Delivery.channel == Channel.VOICE)
               .values(status=DeliveryStatus.FAILED))
    db.commit()
    data = centralist.get(f"/console/actions/{started}/progress.json").get_json()
    assert data["channels"]["sms"]["counts"] == {"delivered": 3}
    assert data["channels"]["voice"]["counts"] == {"failed": 2}
    assert data["channels"]["sms"]["rate"] == 0.3  # three in the last ten seconds
    assert data["channels"]["push"]["open"] == 1


def test_the_live_page_tells_voicemail_from_answered(centralist, db, started):
    voice = db.scalars(select(Delivery).where(Delivery.action_id == started,
                                              Delivery.channel == Channel.VOICE)
                       .order_by(Delivery.id)).all()
    voice[0].status, voice[1].status = DeliveryStatus.ANSWERED, DeliveryStatus.VOICEMAIL
    db.commit()
    data = centralist.get(f"/console/actions/{started}/progress.json").get_json()
    assert data["channels"]["voice"]["counts"] == {"answered": 1, "voicemail": 1}
    page = centralist.get(f"/console/actions/{started}").get_data(as_text=True)
    assert 'id="count-voice-voicemail"' in page and 'id="count-voice-answered"' in page
    assert "<th>Op voicemail</th>" in page
    english = centralist.get(f"/console/actions/{started}?lang=en").get_data(as_text=True)
    assert "<th>On voicemail</th>" in english


def test_calls_and_tips_appear_with_masked_numbers_and_escaped_text(centralist, db, started):
    mn = db.scalar(select(Meldkamer).where(Meldkamer.code == "MN"))
    db.add_all([
        CallRecord(direction=CallDirection.INBOUND, transport="twilio", caller="+31690005151",
                   action_id=started, meldkamer=mn, connected_at=NOW, outcome="connected"),
        CallRecord(direction=CallDirection.INBOUND, transport="sip", caller=None,
                   action_id=started, outcome="unanswered"),
        Tip(action_id=started, source="sms", text="<script>alert(1)</script> bij station",
            received_at=NOW)])
    db.commit()
    data = centralist.get(f"/console/actions/{started}/progress.json").get_json()
    assert (data["calls"]["total"], data["calls"]["connected"]) == (2, 1)
    callers = {call["caller"] for call in data["calls"]["latest"]}
    assert "••••••••151" in callers and "+31690005151" not in json.dumps(data)
    assert data["tips"]["latest"][0]["text"].startswith("<script>")
    live = centralist.get(f"/console/actions/{started}").get_data(as_text=True)
    assert "<script>alert(1)" not in live  # the page draws tips as text, from JSON
    assert "textContent" in centralist.get("/static/console/live.js").get_data(as_text=True)


def test_an_admin_sees_how_many_tips_but_not_what_they_say(client, centralist, db, started):
    db.add(Tip(action_id=started, source="sms", text="geheim", received_at=NOW))
    db.commit()
    centralist.post("/logout", data={"csrf_token": csrf_token(centralist, "/")})
    login_as(client, "admin")
    data = client.get(f"/console/actions/{started}/progress.json").get_json()
    assert data["tips"] == {"total": 1, "latest": None}


def test_ending_sends_the_result_to_everyone_reached(centralist, db, started, redis_client):
    db.execute(update(Delivery).where(Delivery.action_id == started)
               .values(status=DeliveryStatus.DELIVERED))
    db.commit()
    response = post(centralist, f"/console/actions/{started}/end",
                    {"outcome": "arrested", "text": "Dank voor het uitkijken."},
                    page=f"/console/actions/{started}")
    assert response.status_code == 302
    db.expire_all()
    action = db.get(Action, started)
    assert action.status == ActionStatus.ENDED and action.outcome.value == "arrested"
    results = db.scalar(select(func.count(Delivery.id)).where(
        Delivery.action_id == started, Delivery.purpose == DeliveryPurpose.RESULT))
    assert results >= 5
    again = post(centralist, f"/console/actions/{started}/end", {"outcome": "found"},
                 page=f"/console/actions/{started}")
    assert again.status_code == 302
    assert "Deze actie is al beëindigd." in centralist.get(again.headers["Location"]).get_data(
        as_text=True)
    assert db.scalar(select(func.count(Delivery.id)).where(
        Delivery.action_id == started, Delivery.purpose == DeliveryPurpose.RESULT)) == results


def test_ending_without_an_outcome_says_so_and_keeps_the_text(centralist, db, started):
    response = post(centralist, f"/console/actions/{started}/end",
                    {"outcome": "", "text": "Bijna"}, page=f"/console/actions/{started}")
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "Kies een afloop." in page and "Bijna</textarea>" in page
    assert db.get(Action, started).status == ActionStatus.ACTIVE


def test_a_draft_cannot_be_ended(centralist, db):
    action_id = created_id(create(centralist))
    response = post(centralist, f"/console/actions/{action_id}/end", {"outcome": "found"},
                    page=f"/console/actions/{action_id}")
    assert "Een concept kan niet worden beëindigd" in centralist.get(
        response.headers["Location"]).get_data(as_text=True)


# --- the map --------------------------------------------------------------------------

def test_the_base_layer_is_small_valid_geojson_for_every_staff_role(client):
    login_as(client, "municipality_officer")
    response = client.get("/console/map/municipalities.geojson")
    assert response.status_code == 200 and response.mimetype == "application/geo+json"
    assert len(response.data) < 240_000
    layer = json.loads(response.data)
    assert layer["type"] == "FeatureCollection" and len(layer["features"]) == 342
    from shapely.geometry import shape

    utrecht = next(f for f in layer["features"] if f["properties"]["name"] == "Utrecht")
    assert shape(utrecht["geometry"]).contains(shape({"type": "Point",
                                                      "coordinates": [5.1214, 52.0907]}))
    assert "private" in response.headers["Cache-Control"]
    again = client.get("/console/map/municipalities.geojson",
                       headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304


def test_the_base_layer_goes_gzipped_when_asked(client):
    import gzip

    login_as(client, "centralist")
    plain = client.get("/console/map/municipalities.geojson").data
    packed = client.get("/console/map/municipalities.geojson",
                        headers={"Accept-Encoding": "gzip"})
    assert packed.headers["Content-Encoding"] == "gzip" and len(packed.data) < 80_000
    assert gzip.decompress(packed.data) == plain


def test_the_base_layer_needs_a_login(client):
    assert client.get("/console/map/municipalities.geojson").status_code == 302


def test_the_picker_offers_plain_number_fields_and_the_offline_map(centralist):
    page = centralist.get("/console/actions/new").get_data(as_text=True)
    for name in ("lat", "lon", "radius_m"):
        assert re.search(rf'<input type="number"[^>]*name="{name}"', page)
    assert '<input type="hidden" name="polygon"' in page
    assert "vendor/leaflet-1.9.4/leaflet.js" in page and "map/area-picker.js" in page
    assert 'data-boundaries-url="/console/map/municipalities.geojson"' in page
    assert 'data-tiles-url=""' in page


def test_online_tiles_are_offered_when_configured(app, centralist):
    app.extensions["runtime"].settings = Settings.from_env({
        "BURGERNET_HOME": "/tmp", "SECRET_KEY": "x",
        "MAP_TILES_URL": "https://tile.openstreetmap.org/{z}/{x}/{y}.png"})
    page = centralist.get("/console/actions/new").get_data(as_text=True)
    assert 'data-tiles-url="https://tile.openstreetmap.org/{z}/{x}/{y}.png"' in page


# --- English ----------------------------------------------------------------------------

def test_the_console_answers_in_english(centralist, people):
    assert "New action" in centralist.get("/console/?lang=en").get_data(as_text=True)
    form = centralist.get("/console/actions/new?lang=en").get_data(as_text=True)
    assert "Save draft" in form and "Radius in metres" in form and "Kies" not in form
    errors = create(centralist, title_nl="").get_data(as_text=True)
    assert "Fill in a title." in errors
    action_id = created_id(create(centralist))
    preview_page = centralist.get(f"/console/actions/{action_id}").get_data(as_text=True)
    assert "Start action" in preview_page and "participants," in preview_page
    post(centralist, f"/console/actions/{action_id}/start", page=f"/console/actions/{action_id}")
    live = centralist.get(f"/console/actions/{action_id}").get_data(as_text=True)
    assert "End and send the result" in live and "Calls to the control room" in live
    data = centralist.get(f"/console/actions/{action_id}/progress.json").get_json()
    assert data["status_label"] == "Active"
