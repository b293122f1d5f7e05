"""CAP 1.2 documents from actions: valid against the official OASIS schema, and conforming to
what the specification says in prose (time format, references, value sets, area syntax)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
import xmlschema
from sqlalchemy.orm import Session, sessionmaker

from core.errors import ConfigError
from core.geo import national_area
from core.models import Action, Organisation, OrganisationKind
from core.permissions import actor_for_organisation
from core.settings import Settings
from outbound import cap
from outbound.actions import ActionDraft, create_action, end_and_queue, start_and_queue

SCHEMA = xmlschema.XMLSchema(Path(__file__).parents[1] / "data" / "cap" / "CAP-v1.2.xsd")
NS = {"cap": cap.CAP_NS}
START = datetime(2026, 11, 23, 14, 0, 5, 123456, tzinfo=UTC)
KEEP = timedelta(hours=24)

# CAP 1.2, 3.3.2: "2002-05-24T16:49:00-07:00", no fraction, no "Z".
CAP_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d")
# 3.2.1: identifier and sender MUST NOT include spaces, commas or restricted characters.
TOKEN = re.compile(r"[^\s,<&]+")
NUMBER = r"-?\d+(?:\.\d+)?"
PAIR = re.compile(rf"({NUMBER}),({NUMBER})")
CIRCLE = re.compile(rf"({NUMBER}),({NUMBER}) (\d+(?:\.\d+)?)")
VALUES = {
    "status": {"Actual", "Exercise", "System", "Test", "Draft"},
    "msgType": {"Alert", "Update", "Cancel", "Ack", "Error"},
    "scope": {"Public", "Restricted", "Private"},
    "category": {"Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env",
                 "Transport", "Infra", "CBRNE", "Other"},
    "responseType": {"Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess",
                     "AllClear", "None"},
    "urgency": {"Immediate", "Expected", "Future", "Past", "Unknown"},
    "severity": {"Extreme", "Severe", "Moderate", "Minor", "Unknown"},
    "certainty": {"Observed", "Likely", "Possible", "Unlikely", "Unknown"},
}


def assert_conforms(document: bytes) -> ET.Element:
    """DOCUMENT is valid against the OASIS schema and keeps the rules the schema cannot check."""
    SCHEMA.validate(document.decode("utf-8"))
    root = ET.fromstring(document)
    assert root.tag == f"{{{cap.CAP_NS}}}alert"
    value = _texts(root)
    assert TOKEN.fullmatch(value["identifier"]) and TOKEN.fullmatch(value["sender"])
    assert CAP_TIME.fullmatch(value["sent"]) and not value["sent"].endswith("+00:00")
    for name in ("status", "msgType", "scope"):
        assert value[name] in VALUES[name], name
    references = root.findtext("cap:references", namespaces=NS)
    if value["msgType"] in {"Update", "Cancel"}:
        assert references, "an Update or Cancel references the earlier message"
        for triplet in references.split():
            sender, identifier, sent = triplet.split(",")
            assert TOKEN.fullmatch(sender) and TOKEN.fullmatch(identifier)
            assert CAP_TIME.fullmatch(sent)
            assert identifier != value["identifier"]
    infos = root.findall("cap:info", NS)
    assert infos
    for info in infos:
        _assert_info(info)
    return root


def _assert_info(info: ET.Element) -> None:
    for name in ("category", "responseType", "urgency", "severity", "certainty"):
        for element in info.findall(f"cap:{name}", NS):
            assert element.text in VALUES[name], name
    assert len(info.findtext("cap:headline", "", NS)) <= 160
    for name in ("effective", "onset", "expires"):
        moment = info.findtext(f"cap:{name}", None, NS)
        assert moment is None or CAP_TIME.fullmatch(moment), name
    assert info.findtext("cap:web", "", NS).startswith(("http://", "https://"))
    for area in info.findall("cap:area", NS):
        assert area.findtext("cap:areaDesc", "", NS).strip()
        for circle in area.findall("cap:circle", NS):
            match = CIRCLE.fullmatch(circle.text or "")
            assert match, circle.text
            _assert_point(float(match[1]), float(match[2]))
        for polygon in area.findall("cap:polygon", NS):
            pairs = (polygon.text or "").split(" ")
            assert len(pairs) >= 4 and pairs[0] == pairs[-1], "closed, at least 4 pairs"
            for pair in pairs:
                match = PAIR.fullmatch(pair)
                assert match, pair
                _assert_point(float(match[1]), float(match[2]))
        assert area.findall("cap:circle", NS) or area.findall("cap:polygon", NS)


def _assert_point(lat: float, lon: float) -> None:
    assert -90 <= lat <= 90 and -180 <= lon <= 180
    # every area here is Dutch: latitude first means ~50-54, longitude ~3-8
    assert 50 <= lat <= 54 and 3 <= lon <= 8, (lat, lon)


def _texts(root: ET.Element) -> dict[str, str]:
    return {child.tag.split("}")[1]: child.text or "" for child in root if len(child) == 0}


# --- fixtures --------------------------------------------------------------------------------

@pytest.fixture
def organisation(db: Session) -> Organisation:
    org = Organisation(name="Politie CAP-test", kind=OrganisationKind.POLICE)
    db.add(org)
    db.commit()
    return org


@pytest.fixture
def publish(db: Session, sessions: sessionmaker[Session], redis_client: redis.Redis,
            organisation: Organisation):
    """Create and start an action through the action service; returns it, reloaded."""

    def make(start: datetime = START, **fields) -> Action:
        fields.setdefault("kind", "suspect")
        fields.setdefault("title_nl", "Man in rode jas")
        fields.setdefault("meldkamer_code", "MN")
        if "polygon" not in fields and not fields.get("national"):
            fields.setdefault("lat", 52.0907)
            fields.setdefault("lon", 5.1214)
            fields.setdefault("radius_m", 3000)
        action = create_action(db, ActionDraft(**fields), actor_for_organisation(organisation))
        db.commit()
        start_and_queue(sessions, redis_client, action.id, now=start)
        return reload(db, action.id)

    return make


@pytest.fixture
def finish(db: Session, sessions: sessionmaker[Session], redis_client: redis.Redis):
    def end(action: Action, outcome: str, text: str | None = None,
            at: datetime = START + timedelta(hours=2)) -> Action:
        end_and_queue(sessions, redis_client, action.id, outcome, text, now=at)
        return reload(db, action.id)

    return end


def reload(db: Session, action_id: int) -> Action:
    db.expire_all()
    action = db.get(Action, action_id)
    assert action is not None
    return action


def document(db: Session, action: Action, settings: Settings, message=None) -> ET.Element:
    body = cap.alert_document(db, action, message or cap.latest_message(action), settings)
    return assert_conforms(body)


def info_text(root: ET.Element, name: str, index: int = 0) -> str:
    return root.findall("cap:info", NS)[index].findtext(f"cap:{name}", "", NS)


UTRECHT_SQUARE = {"type": "Polygon", "coordinates": [[
    [5.10, 52.08], [5.14, 52.08], [5.14, 52.10], [5.10, 52.10], [5.10, 52.08]]]}
AMERSFOORT_SQUARE = [[[5.37, 52.15], [5.40, 52.15], [5.40, 52.17], [5.37, 52.17],
                      [5.37, 52.15]]]


# --- the Alert -------------------------------------------------------------------------------

def test_a_circle_action_is_an_alert_with_a_circle_in_kilometres(db, publish, settings) -> None:
    action = publish(description_nl="Ongeveer 30 jaar.", instruction_nl="Niet benaderen.")
    root = document(db, action, settings)
    value = _texts(root)
    assert value["msgType"] == "Alert" and value["status"] == "Actual"
    assert value["scope"] == "Public" and value["sender"] == "burgernet@example.org"
    assert value["identifier"] == f"burgernet-{action.id}-20261123T140005Z"
    assert value["sent"] == "2026-11-23T15:00:05+01:00"  # Amsterdam, seconds only
    assert root.find("cap:references", NS) is None
    assert [i.findtext("cap:language", "", NS) for i in root.findall("cap:info", NS)] == \
        ["nl-NL"]
    info = root.find("cap:info", NS)
    assert info is not None
    assert [info.findtext(f"cap:{n}", "", NS) for n in
            ("category", "responseType", "urgency", "severity", "certainty")] == \
        ["Security", "Monitor", "Immediate", "Moderate", "Observed"]
    assert info.find("cap:expires", NS) is None  # a running search has no known end
    assert info_text(root, "headline") == "Man in rode jas"
    assert info_text(root, "description") == "Ongeveer 30 jaar."
    assert info_text(root, "instruction") == "Niet benaderen. Gezien? Bel gratis 0800-0011."
    assert info_text(root, "contact") == "0800-0011"
    assert info_text(root, "senderName") == "Burgernet, Politie CAP-test"
    assert info.findtext("cap:area/cap:circle", "", NS) == "52.09070,5.12140 3.000"
    assert info.find("cap:area/cap:polygon", NS) is None
    assert "Utrecht" in info.findtext("cap:area/cap:areaDesc", "", NS).split(", ")


def test_a_polygon_is_written_latitude_first_and_closed(db, publish, settings) -> None:
    action = publish(polygon=UTRECHT_SQUARE)
    root = document(db, action, settings)
    polygons = [p.text for p in root.findall("cap:info/cap:area/cap:polygon", NS)]
    assert polygons == ["52.08000,5.10000 52.08000,5.14000 52.10000,5.14000 "
                        "52.10000,5.10000 52.08000,5.10000"]
    assert root.find("cap:info/cap:area/cap:circle", NS) is None
    assert info_text(root, "area/cap:areaDesc") == "Utrecht"


def test_a_multipolygon_becomes_one_polygon_per_part(db, publish, settings) -> None:
    action = publish(polygon={"type": "MultiPolygon", "coordinates": [
        UTRECHT_SQUARE["coordinates"], AMERSFOORT_SQUARE]})
    root = document(db, action, settings)
    polygons = root.findall("cap:info/cap:area/cap:polygon", NS)
    assert len(polygons) == 2
    assert polygons[1].text.startswith("52.15000,5.37000 ")
    assert set(info_text(root, "area/cap:areaDesc").split(", ")) >= {"Utrecht", "Amersfoort"}


def test_a_national_amber_alert_covers_the_country(db, publish, settings) -> None:
    action = publish(kind="amber", national=True, title_nl="Meisje (8) vermist")
    root = document(db, action, settings)
    info = root.find("cap:info", NS)
    assert info is not None
    assert [info.findtext(f"cap:{n}", "", NS) for n in ("category", "urgency", "severity")] == \
        ["Rescue", "Immediate", "Severe"]
    assert info.findtext("cap:event", "", NS).startswith("AMBER Alert")
    assert info.findtext("cap:area/cap:areaDesc", "", NS) == "Nederland"
    polygons = info.findall("cap:area/cap:polygon", NS)
    assert len(polygons) == len(national_area().geojson["coordinates"])
    parameters = {p.findtext("cap:valueName", "", NS): p.findtext("cap:value", "", NS)
                  for p in info.findall("cap:parameter", NS)}
    assert parameters == {"AMBER": "national"}


def test_a_regional_missing_person_is_rescue(db, publish, settings) -> None:
    root = document(db, publish(kind="missing_person", radius_m=10_000), settings)
    assert info_text(root, "category") == "Rescue" and info_text(root, "severity") == "Severe"
    root = document(db, publish(kind="amber", title_nl="Jongen vermist"), settings)
    assert root.find("cap:info/cap:parameter/cap:value", NS).text == "regional"


def test_english_texts_add_an_english_info_after_the_dutch(db, publish, settings) -> None:
    action = publish(title_en="Man in red coat", description_nl="Ongeveer 30 jaar.",
                     instruction_nl="Niet benaderen.", instruction_en="Do not approach.")
    root = document(db, action, settings)
    infos = root.findall("cap:info", NS)
    assert [i.findtext("cap:language", "", NS) for i in infos] == ["nl-NL", "en-GB"]
    assert info_text(root, "headline", 1) == "Man in red coat"
    assert info_text(root, "event", 1) == "Burgernet: suspect sought"
    assert info_text(root, "description", 1) == "Ongeveer 30 jaar."  # falls back to Dutch
    assert info_text(root, "instruction", 1) == \
        "Do not approach. Seen anything? Call 0800-0011 free of charge."
    assert infos[1].findtext("cap:area/cap:areaDesc", "", NS) == \
        infos[0].findtext("cap:area/cap:areaDesc", "", NS)


# --- the end ---------------------------------------------------------------------------------

def test_found_publishes_an_update_that_references_the_alert(db, publish, finish,
                                                             settings) -> None:
    action = publish(title_en="Man in red coat")
    alert = cap.alert_message(action)
    action = finish(action, "found", "Dank zij een tip in de Biltstraat.")
    message = cap.latest_message(action)
    assert message.msg_type == "Update" and message.identifier != alert.identifier
    root = document(db, action, settings, message)
    value = _texts(root)
    assert value["identifier"] == f"{alert.identifier}-update"
    assert value["sent"] == "2026-11-23T17:00:05+01:00"
    assert value["references"] == \
        f"burgernet@example.org,{alert.identifier},2026-11-23T15:00:05+01:00"
    assert [info_text(root, n) for n in ("responseType", "urgency", "severity")] == \
        ["AllClear", "Past", "Minor"]
    assert info_text(root, "headline") == "Gevonden: Man in rode jas"
    assert info_text(root, "headline", 1) == "Found: Man in red coat"
    assert info_text(root, "description") == \
        "De actie is beëindigd: gevonden. Dank zij een tip in de Biltstraat."
    assert info_text(root, "expires") == "2026-11-24T17:00:05+01:00"  # ended + CAP_KEEP_HOURS
    # the original Alert is unchanged by the end
    assert _texts(document(db, action, settings, alert))["msgType"] == "Alert"


@pytest.mark.parametrize(("outcome", "response", "severity"), [
    ("arrested", "AllClear", "Minor"), ("not_found", "None", "Unknown")])
def test_other_outcomes_are_updates_too(db, publish, finish, settings, outcome, response,
                                        severity) -> None:
    action = finish(publish(), outcome)
    root = document(db, action, settings)
    assert _texts(root)["msgType"] == "Update"
    assert [info_text(root, "responseType"), info_text(root, "severity")] == [response, severity]


def test_cancelled_publishes_a_cancel(db, publish, finish, settings) -> None:
    action = finish(publish(kind="vehicle", title_nl="Grijze Volvo XX-123-Y"), "cancelled")
    root = document(db, action, settings)
    value = _texts(root)
    assert value["msgType"] == "Cancel" and value["identifier"].endswith("-cancel")
    assert value["references"].split(",")[1] == cap.alert_message(action).identifier
    assert info_text(root, "headline") == "Ingetrokken: Grijze Volvo XX-123-Y"
    assert info_text(root, "description") == \
        "De actie is beëindigd: de actie is ingetrokken."


def test_identifiers_are_unique_per_message(db, publish, finish) -> None:
    actions = [publish(), publish(), finish(publish(), "found"), finish(publish(), "cancelled")]
    identifiers = [m.identifier for a in actions for m in cap.messages(a)]
    assert len(identifiers) == 6 == len(set(identifiers))
    for identifier in identifiers:
        assert TOKEN.fullmatch(identifier)


# --- escaping and limits ---------------------------------------------------------------------

def test_markup_in_texts_is_escaped_and_survives_a_round_trip(db, publish, settings) -> None:
    title = 'Man met "pet" & <tas> \'s avonds'
    action = publish(title_nl=title, description_nl="a < b && c > d]]>",
                     instruction_nl="Bel <b>niet</b> & \"wacht\"")
    action.description_nl = "a < b && c > d\x07]]>"  # stored before the service refused it
    db.commit()
    body = cap.alert_document(db, action, cap.alert_message(action), settings)
    assert b"&lt;tas&gt;" in body and b"&amp; " in body and b"<b>" not in body
    root = assert_conforms(body)
    assert info_text(root, "headline") == title
    assert info_text(root, "description") == "a < b && c > d]]>"  # the BEL is dropped
    assert info_text(root, "instruction").startswith('Bel <b>niet</b> & "wacht"')


def test_a_long_title_gives_a_headline_of_at_most_160_characters(db, publish, settings) -> None:
    root = document(db, publish(title_nl="Zeer lange titel " * 11), settings)
    headline = info_text(root, "headline")
    assert len(headline) == 160 and headline.endswith("…")


# --- what is public --------------------------------------------------------------------------

def test_only_started_search_actions_and_amber_alerts_are_public(
        db, publish, finish, organisation) -> None:
    now = START + timedelta(hours=3)
    running = publish()
    amber = publish(kind="amber", national=True)
    ended = finish(publish(), "found")
    inquiry = publish(kind="neighbourhood_inquiry", title_nl="Wie zag iets?")
    preventive = publish(kind="preventive", title_nl="Let op inbraken")
    draft = create_action(db, ActionDraft(kind="suspect", title_nl="Nog niet gestart",
                                          meldkamer_code="MN", lat=52.09, lon=5.12,
                                          radius_m=1000), actor_for_organisation(organisation))
    db.commit()
    public = {a.id for a in cap.public_actions(db, now, KEEP)}
    assert {running.id, amber.id, ended.id} <= public
    assert not {inquiry.id, preventive.id, draft.id} & public
    for action in (inquiry, preventive):
        assert cap.find_message(db, cap.alert_message(action).identifier, now, KEEP) is None
    assert cap.find_message(db, f"burgernet-{draft.id}-20261123T140005Z", now, KEEP) is None


def test_an_ended_alert_stays_for_the_keep_time_then_goes(db, publish, finish) -> None:
    action = finish(publish(), "found")  # ended at START + 2 h
    update = cap.latest_message(action).identifier
    ended = action.ended_at
    assert ended is not None
    just_before, at_expiry = ended + KEEP - timedelta(seconds=1), ended + KEEP
    assert action.id in {a.id for a in cap.public_actions(db, just_before, KEEP)}
    assert cap.find_message(db, update, just_before, KEEP) is not None
    assert action.id not in {a.id for a in cap.public_actions(db, at_expiry, KEEP)}
    assert cap.find_message(db, update, at_expiry, KEEP) is None
    assert cap.last_removal(db, at_expiry, KEEP) == ended + KEEP


@pytest.mark.parametrize("identifier", [
    "", "burgernet-1", "burgernet-x-20261123T140005Z", "burgernet-99999999-20261123T140005Z",
    "burgernet-{id}-20261123T140006Z", "burgernet-{id}-20261123T140005Z-update",
    "burgernet-{id}-20261123T140005Z-cancel", "burgernet-{id}-20261123T140005Z-foo",
    "burgernet-{id}-20261123T140005Z\n"])
def test_unknown_identifiers_find_nothing(db, publish, identifier) -> None:
    action = publish()
    found = cap.find_message(db, identifier.format(id=action.id), START, KEEP)
    assert found is None


def test_a_known_identifier_finds_its_action_and_message(db, publish, finish) -> None:
    action = finish(publish(), "arrested")
    for message in cap.messages(action):
        found = cap.find_message(db, message.identifier, START + timedelta(hours=3), KEEP)
        assert found is not None and found[0].id == action.id and found[1] == message


# --- settings --------------------------------------------------------------------------------

def test_status_and_sender_come_from_the_settings(db, publish, settings) -> None:
    exercise = Settings.from_env({"BURGERNET_HOME": str(settings.home),
                                  "SECRET_KEY": "x", "CAP_STATUS": "exercise",
                                  "CAP_SENDER": "meldkamer@politie.example",
                                  "CAP_KEEP_HOURS": "6", "FREE_NUMBER": "0800-1234"})
    action = publish()
    root = document(db, action, exercise)
    assert _texts(root)["status"] == "Exercise"
    assert _texts(root)["sender"] == "meldkamer@politie.example"
    assert info_text(root, "contact") == "0800-1234"
    assert cap.keep_for(exercise) == timedelta(hours=6)


@pytest.mark.parametrize(("name", "value", "message"), [
    ("CAP_SENDER", "burgernet, politie", "without spaces, commas"),
    ("CAP_SENDER", "a&b", "without spaces, commas"),
    ("CAP_STATUS", "Draft", "not one of Actual, Exercise, System, Test"),
    ("CAP_KEEP_HOURS", "0", "above 0"),
    ("CAP_KEEP_HOURS", "a day", "above 0"),
    ("CAP_KEEP_HOURS", "721", "at most 720"),
])
def test_bad_cap_settings_are_named_at_start(tmp_path: Path, name, value, message) -> None:
    with pytest.raises(ConfigError, match=f"{name}.*{message}"):
        Settings.from_env({"BURGERNET_HOME": str(tmp_path), "SECRET_KEY": "x", name: value})


def test_the_schema_rejects_what_the_specification_forbids() -> None:
    """The checks above have teeth: the real schema refuses a bad document."""
    bad = (f'<alert xmlns="{cap.CAP_NS}"><identifier>x</identifier><sender>s</sender>'
           "<sent>2026-11-23T14:00:05Z</sent><status>Actual</status><msgType>Alert</msgType>"
           "<scope>Public</scope></alert>")
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        SCHEMA.validate(bad)
