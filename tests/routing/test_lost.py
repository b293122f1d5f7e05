"""routing.lost without HTTP: answers at a fixed time, the configuration helpers, and what a
meldkamer without a number does to a mapping."""

from __future__ import annotations

import pytest
from lxml import etree
from sqlalchemy import update
from sqlalchemy.orm import Session

from core.models import Meldkamer
from routing.lost import (
    MEDIA_TYPE,
    ROUTING_NS,
    SCHEMA,
    LostConfig,
    answer,
    dial_string,
    internal_error,
    source_for,
)
from tests.routing.conftest import NOW
from tests.web.lost_client import FIGURES, find_service_point

CONFIG = LostConfig(source="lost.burgernet.example", national_fallback="MN",
                    service_number="08000011")
NS = {"l": "urn:ietf:params:xml:ns:lost1", "bn": ROUTING_NS}


def _answer(db: Session, document: str | bytes) -> etree._Element:
    data = document.encode() if isinstance(document, str) else document
    root = etree.fromstring(answer(db, data, MEDIA_TYPE, NOW, CONFIG))
    schema = etree.RelaxNG(etree.parse(str(SCHEMA)))
    assert schema.validate(root), schema.error_log.last_error
    return root


def test_a_mapping_expires_an_hour_after_the_answer(db: Session) -> None:
    root = _answer(db, find_service_point(52.0907, 5.1214))
    mapping = root.find("l:mapping", NS)
    assert (mapping.get("expires"), mapping.get("lastUpdated"), mapping.get("source")) == (
        "2026-11-23T13:00:00Z", "2023-01-01T00:00:00Z", "lost.burgernet.example")
    assert root.xpath("l:path/l:via/@source", namespaces=NS) == ["lost.burgernet.example"]


def test_an_unreachable_meldkamer_hands_over_to_its_fallback_and_says_so(db: Session) -> None:
    db.execute(update(Meldkamer).where(Meldkamer.code == "MN").values(phone=None, sip_uri=None))
    root = _answer(db, find_service_point(52.0907, 5.1214))
    assert root.xpath("l:mapping/l:uri/text()", namespaces=NS) == [
        "sip:+31690000102@127.0.0.1:5060", "tel:+31690000102"]
    reason = root.find("bn:routing", NS)
    assert reason.get("meldkamer") == "ON"
    assert reason.text == ("Point (52.09070, 5.12140) lies in Utrecht (region Utrecht); MN has no "
                           "number or SIP URI; its fallback ON takes the call")


def test_a_meldkamer_nobody_can_reach_is_an_internal_error(db: Session) -> None:
    db.execute(update(Meldkamer).values(phone=None, sip_uri=None))
    root = _answer(db, find_service_point(52.0907, 5.1214))
    assert root.xpath("local-name(*)") == "internalError"
    assert "has no SIP URI or number configured" in root.xpath("string(*/@message)")


def test_the_internal_error_document_is_valid() -> None:
    root = etree.fromstring(internal_error("lost.burgernet.example"))
    assert etree.RelaxNG(etree.parse(str(SCHEMA))).validate(root)


def test_a_figure_without_a_mapping_service_answers_errors(db: Session) -> None:
    root = _answer(db, (FIGURES / "figure-09.xml").read_bytes())
    assert root.xpath("local-name(*)") == "notFound"


@pytest.mark.parametrize(("url", "source"), [
    ("http://127.0.0.1:8000", "127.0.0.1"),
    ("https://burgernet.example.nl", "burgernet.example.nl"),
    ("http://localhost:8000", "localhost.localdomain"),
    ("http://[::1]:8000", "localhost.localdomain"),
])
def test_the_source_is_the_host_of_the_public_url(url: str, source: str) -> None:
    assert source_for(url) == source


@pytest.mark.parametrize(("number", "digits"), [
    ("0800-0011", "08000011"), ("0800 00 11", "08000011"), ("112", "112"),
    ("+31 800 0011", None), ("bel ons", None)])
def test_the_service_number_is_what_a_keypad_dials(number: str, digits: str | None) -> None:
    assert dial_string(number) == digits
