"""The public CAP feed over HTTP: an Atom 1.0 feed whose entries link to CAP 1.2 documents,
with conditional GET; only started search actions and AMBER Alerts, ended ones for a while."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from core.models import Action, Organisation
from core.permissions import actor_for_organisation
from outbound import cap
from outbound.actions import ActionDraft, create_action, end_and_queue, start_and_queue
from tests.outbound.test_cap import assert_conforms

ATOM = {"atom": "http://www.w3.org/2005/Atom"}
CAP = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
FEED = "/cap/feed.atom"


@pytest.fixture
def publish(app, sessions: sessionmaker[Session], redis_client: redis.Redis):
    """Create an action of the demo police organisation and start it AGO before now."""

    def make(ago: timedelta | None = timedelta(minutes=10), **fields) -> int:
        fields.setdefault("kind", "suspect")
        fields.setdefault("title_nl", "Man in rode jas")
        fields.setdefault("meldkamer_code", "MN")
        if not fields.get("national") and "polygon" not in fields:
            fields.update(lat=52.0907, lon=5.1214, radius_m=fields.get("radius_m", 2000))
        with sessions() as session:
            org = session.scalar(select(Organisation).where(
                Organisation.name == "Politie Midden-Nederland"))
            action_id = create_action(session, ActionDraft(**fields),
                                      actor_for_organisation(org)).id
            session.commit()
        if ago is not None:
            start_and_queue(sessions, redis_client, action_id, now=datetime.now(UTC) - ago)
        return action_id

    return make


@pytest.fixture
def finish(sessions: sessionmaker[Session], redis_client: redis.Redis):
    def end(action_id: int, outcome: str, ago: timedelta = timedelta(minutes=1),
            text: str | None = None) -> None:
        end_and_queue(sessions, redis_client, action_id, outcome, text,
                      now=datetime.now(UTC) - ago)

    return end


def read_feed(client: FlaskClient) -> ET.Element:
    """The feed, checked for what RFC 4287 requires of a feed and of each entry."""
    response = client.get(FEED)
    assert response.status_code == 200
    assert response.mimetype == "application/atom+xml"
    root = ET.fromstring(response.data)
    assert root.tag == "{http://www.w3.org/2005/Atom}feed"
    for name in ("id", "title", "updated"):
        assert len(root.findall(f"atom:{name}", ATOM)) == 1, name
    assert root.findtext("atom:author/atom:name", "", ATOM)
    self_link = root.find("atom:link[@rel='self']", ATOM)
    assert self_link is not None and self_link.get("href", "").endswith(FEED)
    for entry in root.findall("atom:entry", ATOM):
        for name in ("id", "title", "updated"):
            assert len(entry.findall(f"atom:{name}", ATOM)) == 1, name
        links = entry.findall("atom:link[@rel='alternate']", ATOM)
        assert len(links) == 1 and links[0].get("type") == "application/cap+xml"
        assert links[0].get("href") == entry.findtext("atom:id", "", ATOM)
    return root


def entries(client: FlaskClient) -> dict[str, str]:
    """Entry title by the path of its CAP document."""
    return {_path(e.find("atom:link", ATOM).get("href")): e.findtext("atom:title", "", ATOM)
            for e in read_feed(client).findall("atom:entry", ATOM)}


def _path(url: str | None) -> str:
    assert url and url.startswith("http://127.0.0.1:8000/cap/alerts/"), url
    return url.removeprefix("http://127.0.0.1:8000")


def fetch(client: FlaskClient, path: str) -> ET.Element:
    response = client.get(path)
    assert response.status_code == 200, path
    assert response.mimetype == "application/cap+xml"
    return assert_conforms(response.data)


def identifier_of(action_id: int, client: FlaskClient) -> str:
    paths = [p for p in entries(client) if p.startswith(f"/cap/alerts/burgernet-{action_id}-")]
    assert len(paths) == 1
    return paths[0].removeprefix("/cap/alerts/").removesuffix(".xml")


def test_an_empty_feed_is_a_valid_atom_feed_without_login(client) -> None:
    root = read_feed(client)
    assert root.findall("atom:entry", ATOM) == []
    response = client.get(FEED)
    assert response.headers["ETag"] and response.headers["Last-Modified"]
    assert response.cache_control.public and response.cache_control.max_age == 60


def test_an_active_circle_action_is_in_the_feed_as_a_cap_alert(client, publish) -> None:
    action_id = publish(title_en="Man in red coat")
    listed = entries(client)
    path = f"/cap/alerts/{identifier_of(action_id, client)}.xml"
    assert listed[path] == "Man in rode jas"
    root = fetch(client, path)
    assert root.findtext("cap:msgType", "", CAP) == "Alert"
    assert root.findtext("cap:identifier", "", CAP) == path[12:-4]
    assert root.findtext("cap:info/cap:area/cap:circle", "", CAP) == "52.09070,5.12140 2.000"
    assert [i.findtext("cap:language", "", CAP) for i in root.findall("cap:info", CAP)] == \
        ["nl-NL", "en-GB"]


def test_polygon_and_national_amber_alerts_are_published(client, publish) -> None:
    square = {"type": "Polygon", "coordinates": [[[5.10, 52.08], [5.14, 52.08], [5.14, 52.10],
                                                 [5.10, 52.10], [5.10, 52.08]]]}
    polygon = fetch(client, f"/cap/alerts/{identifier_of(publish(polygon=square), client)}.xml")
    assert polygon.findtext("cap:info/cap:area/cap:polygon", "", CAP).startswith(
        "52.08000,5.10000 ")
    amber = fetch(client, f"/cap/alerts/"
                          f"{identifier_of(publish(kind='amber', national=True), client)}.xml")
    assert amber.findtext("cap:info/cap:area/cap:areaDesc", "", CAP) == "Nederland"
    assert amber.findtext("cap:info/cap:category", "", CAP) == "Rescue"


def test_drafts_and_inquiries_never_appear(client, publish, sessions) -> None:
    draft = publish(ago=None)
    inquiry = publish(kind="neighbourhood_inquiry", title_nl="Wie zag de inbraak?")
    preventive = publish(kind="preventive", title_nl="Sluit uw schuur af")
    paths = entries(client)
    assert not any(f"burgernet-{a}-" in p for p in paths for a in (draft, inquiry, preventive))
    with sessions() as session:
        started = [cap.alert_message(session.get(Action, a)) for a in (inquiry, preventive)]
    stamp = started[0].identifier.rsplit("-", 1)[1]
    for identifier in [m.identifier for m in started] + [f"burgernet-{draft}-{stamp}"]:
        assert client.get(f"/cap/alerts/{identifier}.xml").status_code == 404


def test_found_replaces_the_alert_by_an_update_that_references_it(client, publish,
                                                                  finish) -> None:
    action_id = publish()
    alert = identifier_of(action_id, client)
    finish(action_id, "found", text="Aangetroffen in het Wilhelminapark.")
    assert entries(client) == {f"/cap/alerts/{alert}-update.xml": "Gevonden: Man in rode jas"}
    update = fetch(client, f"/cap/alerts/{alert}-update.xml")
    assert update.findtext("cap:msgType", "", CAP) == "Update"
    assert update.findtext("cap:references", "", CAP).split(",")[1] == alert
    assert "Wilhelminapark" in update.findtext("cap:info/cap:description", "", CAP)
    assert fetch(client, f"/cap/alerts/{alert}.xml").findtext("cap:msgType", "", CAP) == "Alert"


def test_cancelled_publishes_a_cancel(client, publish, finish) -> None:
    action_id = publish(kind="missing_person", title_nl="Vrouw (82) vermist")
    alert = identifier_of(action_id, client)
    finish(action_id, "cancelled")
    cancel = fetch(client, f"/cap/alerts/{alert}-cancel.xml")
    assert cancel.findtext("cap:msgType", "", CAP) == "Cancel"
    assert cancel.findtext("cap:references", "", CAP).split(",")[1] == alert
    assert client.get(f"/cap/alerts/{alert}-update.xml").status_code == 404


def test_an_ended_alert_leaves_the_feed_after_cap_keep_hours(client, publish, finish) -> None:
    recent, old = publish(ago=timedelta(hours=30)), publish(ago=timedelta(hours=30))
    recent_id, old_id = identifier_of(recent, client), identifier_of(old, client)
    finish(recent, "arrested", ago=timedelta(hours=23))
    finish(old, "not_found", ago=timedelta(hours=25))
    assert set(entries(client)) == {f"/cap/alerts/{recent_id}-update.xml"}
    assert client.get(f"/cap/alerts/{old_id}-update.xml").status_code == 404
    assert client.get(f"/cap/alerts/{old_id}.xml").status_code == 404
    # the feed changed when the old one left: its updated time says so
    updated = read_feed(client).findtext("atom:updated", "", ATOM)
    left = datetime.fromisoformat(updated).astimezone(UTC)
    assert abs(left - (datetime.now(UTC) - timedelta(hours=1))) < timedelta(minutes=1)


def test_conditional_get_answers_304_until_the_feed_changes(client, publish) -> None:
    publish()
    first = client.get(FEED)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    again = client.get(FEED, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    assert client.get(FEED, headers={"If-Modified-Since": modified}).status_code == 304
    publish(ago=timedelta(seconds=0), title_nl="Tweede actie")
    changed = client.get(FEED, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag


def test_a_cap_document_answers_304_to_a_current_copy(client, publish) -> None:
    path = f"/cap/alerts/{identifier_of(publish(), client)}.xml"
    first = client.get(path)
    assert first.cache_control.public and first.cache_control.max_age == 300
    assert client.get(path, headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    assert client.get(path, headers={"If-None-Match": '"other"'}).status_code == 200


@pytest.mark.parametrize("identifier", ["nothing", "burgernet-1", "burgernet-0-20261123T140005Z",
                                        "burgernet-1-20261123T140005Z-ended", "..%2Fsecret"])
def test_an_unknown_identifier_is_404(client, identifier) -> None:
    assert client.get(f"/cap/alerts/{identifier}.xml").status_code == 404


def test_markup_in_titles_is_escaped_in_feed_and_document(client, publish) -> None:
    title = 'Man met "pet" & <tas>'
    action_id = publish(title_nl=title, description_nl="<script>alert('x')</script>")
    response = client.get(FEED)
    assert b"<tas>" not in response.data and b"<script>" not in response.data
    assert title in entries(client).values()
    root = fetch(client, f"/cap/alerts/{identifier_of(action_id, client)}.xml")
    assert root.findtext("cap:info/cap:headline", "", CAP) == title


def test_the_feed_costs_two_queries_however_many_alerts(client, publish, engine: Engine,
                                                        finish) -> None:
    for _ in range(3):
        publish()
    finish(publish(), "found")
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        assert len(read_feed(client).findall("atom:entry", ATOM)) == 4
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 2, statements
