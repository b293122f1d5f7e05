"""The public CAP feed: an Atom 1.0 feed (RFC 4287) of the public alerts, and each alert as a
CAP 1.2 document.

Each entry links to its CAP document (`<link rel="alternate" type="application/cap+xml">`)
rather than embedding it: the practice of OASIS's "CAP Feeds" note and what Google Public
Alerts asks for, and what the national weather services' feeds do. It keeps the feed small
and cheap to serve; consumers fetch a document once, since a message never changes. An
action appears with its latest message: the Alert while it runs, then its Update or Cancel.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from flask import Blueprint, Response, abort, request, url_for

from core.models import Action
from outbound import cap
from web.context import db, runtime

bp = Blueprint("cap", __name__, url_prefix="/cap")

ATOM_NS = "http://www.w3.org/2005/Atom"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
ATOM_TYPE = "application/atom+xml; charset=utf-8"
CAP_TYPE = f"{cap.CAP_MEDIA_TYPE}; charset=utf-8"
#: The feed is polled; a minute old is fresh enough and spares the database.
FEED_MAX_AGE = 60
#: A document never changes, but it disappears once its action leaves the feed.
DOCUMENT_MAX_AGE = 300
#: The feed's updated time before anything was ever published.
NEVER = datetime(1970, 1, 1, tzinfo=UTC)


@bp.get("/feed.atom")
def feed() -> Response:
    """Active public alerts, and ended ones for CAP_KEEP_HOURS; 304 when nothing changed."""
    settings = runtime().settings
    now, keep = datetime.now(UTC), cap.keep_for(settings)
    session = db()
    entries = [(action, cap.latest_message(action))
               for action in cap.public_actions(session, now, keep)]
    changes = [message.sent for _, message in entries]
    removed = cap.last_removal(session, now, keep)
    updated = max([*changes, removed] if removed else changes, default=NEVER)
    return _conditional(_atom(settings.public_url, entries, updated), ATOM_TYPE, updated,
                        FEED_MAX_AGE)


@bp.get("/alerts/<identifier>.xml")
def alert(identifier: str) -> Response:
    """One CAP 1.2 message; 404 for an unknown identifier or an alert no longer public."""
    settings = runtime().settings
    session = db()
    found = cap.find_message(session, identifier, datetime.now(UTC), cap.keep_for(settings))
    if found is None:
        abort(404)
    action, message = found
    return _conditional(cap.alert_document(session, action, message, settings), CAP_TYPE,
                        message.sent, DOCUMENT_MAX_AGE)


def _atom(public_url: str, entries: list[tuple[Action, cap.Message]],
          updated: datetime) -> bytes:
    # Plain names under a literal xmlns: ElementTree's default_namespace cannot carry the
    # unqualified attributes (rel, href) that Atom uses.
    root = ET.Element("feed", {"xmlns": ATOM_NS, XML_LANG: "nl"})
    self_url = public_url + url_for("cap.feed")
    _add(root, "id", self_url)
    _add(root, "title", "Burgernet: actuele meldingen (CAP 1.2)")
    _add(root, "subtitle", "Zoekacties en AMBER Alerts van Burgernet als CAP 1.2-berichten")
    _add(root, "updated", cap.cap_time(updated))
    ET.SubElement(root, "link", rel="self", type="application/atom+xml", href=self_url)
    _add(ET.SubElement(root, "author"), "name", "Burgernet")
    for action, message in entries:
        _entry(root, public_url, action, message)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _entry(root: ET.Element, public_url: str, action: Action, message: cap.Message) -> None:
    href = public_url + url_for("cap.alert", identifier=message.identifier)
    entry = ET.SubElement(root, "entry")
    _add(entry, "id", href)
    _add(entry, "title", cap.headline(action, message))
    _add(entry, "updated", cap.cap_time(message.sent))
    _add(entry, "published", cap.cap_time(cap.alert_message(action).sent))
    ET.SubElement(entry, "link", rel="alternate", type=cap.CAP_MEDIA_TYPE, href=href)
    ET.SubElement(entry, "category", term=cap.CATEGORY[action.kind])
    _add(entry, "summary", cap.description(action, message) or cap.headline(action, message))


def _add(parent: ET.Element, name: str, text: str) -> None:
    ET.SubElement(parent, name).text = text


def _conditional(body: bytes, content_type: str, modified: datetime, max_age: int) -> Response:
    """BODY with a strong ETag, Last-Modified and caching headers; 304 to a client whose
    copy is current (If-None-Match, else If-Modified-Since)."""
    response = Response(body, content_type=content_type)
    response.set_etag(hashlib.sha256(body).hexdigest()[:32])
    response.last_modified = modified.replace(microsecond=0)
    response.cache_control.public = True
    response.cache_control.max_age = max_age
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.make_conditional(request)  # in place; typed as werkzeug's Response, not Flask's
    return response
