"""The vendored LoST schemas (routing/schemas) against the RFC's own example documents: the
server's copy (converted from Section 15) and the test client's (Appendix A) accept every
figure, refuse the same broken documents, and the server accepts every figure that is a
request."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from routing.lost import SCHEMA, LostError, parse_request
from tests.web.lost_client import APPENDIX_A, FIGURES, MEDIA_TYPE

FIGURE_NUMBERS = [n for n in range(1, 20) if n != 10]
REQUESTS = (1, 3, 5, 7, 9, 11, 13, 15)


def _schemas() -> dict[str, etree.RelaxNG]:
    return {path.name: etree.RelaxNG(etree.parse(str(path))) for path in (SCHEMA, APPENDIX_A)}


def _figure(number: int) -> Path:
    return FIGURES / f"figure-{number:02d}.xml"


@pytest.mark.parametrize("number", FIGURE_NUMBERS)
def test_every_figure_of_the_rfc_is_valid_against_both_schemas(number: int) -> None:
    document = etree.parse(str(_figure(number)))
    for name, schema in _schemas().items():
        assert schema.validate(document), (name, schema.error_log.last_error)


def test_figure_10_is_not_namespace_well_formed_as_published() -> None:
    with pytest.raises(etree.XMLSyntaxError, match="Namespace prefix p2 on Polygon"):
        etree.parse(str(_figure(10)))


@pytest.mark.parametrize(("figure", "change"), [
    (2, ('sourceId="7e3f40b098c711dbb6060800200c9a66"', "")),
    (2, ("path>", "pathway>")),
    (17, ("internalError", "SRSInvalid")),
    (17, ('source="resolver.example"', 'source="resolver"')),
    (12, ("urn:service:sos.police", "urn:service:sos.police <b/>")),
    (1, ('<service>urn:service:sos.police</service>', '<service>a</service><service>b</service>')),
    (11, ("listServices", "listService")),
])
def test_both_schemas_refuse_the_same_broken_documents(figure: int, change) -> None:
    text = _figure(figure).read_text()
    assert text.count(change[0]) >= 1
    document = etree.fromstring(text.replace(*change).encode())
    verdicts = {name: schema.validate(document) for name, schema in _schemas().items()}
    assert verdicts == dict.fromkeys(verdicts, False)


@pytest.mark.parametrize("number", REQUESTS)
def test_the_server_accepts_every_request_figure(number: int) -> None:
    root = parse_request(_figure(number).read_bytes(), MEDIA_TYPE)
    assert etree.QName(root).localname in ("findService", "listServices",
                                           "listServicesByLocation", "getServiceBoundary")


@pytest.mark.parametrize("number", sorted(set(FIGURE_NUMBERS) - set(REQUESTS)))
def test_the_server_refuses_answers_sent_as_requests(number: int) -> None:
    with pytest.raises(LostError) as caught:
        parse_request(_figure(number).read_bytes(), MEDIA_TYPE)
    assert caught.value.kind == "badRequest"
    assert "is an answer, not a request" in caught.value.message
