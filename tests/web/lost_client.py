"""A small LoST client written from RFC 5222, not from our server (it imports nothing of
routing.lost): it sends the RFC's own example requests (tests/data/lost, Figures 1, 3, 5, 9,
11, 13, 15), changed only in coordinates, civic address and service, over HTTP POST as
Section 14 says, and reads every answer with lxml after checking it against the schema of the
RFC's Appendix A."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

from flask.testing import FlaskClient
from lxml import etree

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ROOT / "tests" / "data" / "lost"
APPENDIX_A = ROOT / "routing" / "schemas" / "rfc5222-appendix-a.rng"
MEDIA_TYPE = "application/lost+xml"
NS = {"lost": "urn:ietf:params:xml:ns:lost1"}
LANG = "{http://www.w3.org/XML/1998/namespace}lang"
#: The civic address of Figures 3 and 5, element by element.
RFC_CIVIC = {"country": "DE", "A1": "Bavaria", "A3": "Munich", "A6": "Otto-Hahn-Ring",
             "HNO": "6", "PC": "81675"}
CIRCLE = """<gs:Circle xmlns:gs="http://www.opengis.net/pidflo/1.0"
        srsName="urn:ogc:def:crs:EPSG::4326">
      <p2:pos>{lat} {lon}</p2:pos>
      <gs:radius uom="urn:ogc:def:uom:EPSG::9001">{radius}</gs:radius>
    </gs:Circle>"""


# --- requests: the RFC's figures with Dutch places ------------------------------------------

def figure(number: int) -> str:
    return (FIGURES / f"figure-{number:02d}.xml").read_text(encoding="ascii")


def find_service_point(lat: float, lon: float, service: str = "urn:service:sos.police") -> str:
    """Figure 1: a geodetic <findService>."""
    return _swap(figure(1), {"37.775 -122.422": f"{lat} {lon}",
                             "urn:service:sos.police": service})


def find_service_circle(lat: float, lon: float, radius: float) -> str:
    """Figure 1 with the Point replaced by a Circle (RFC 5491, Section 5.2.3)."""
    point = figure(1).split("<p2:Point", 1)[1].split("</p2:Point>", 1)[0]
    return _swap(figure(1), {f"<p2:Point{point}</p2:Point>":
                             CIRCLE.format(lat=lat, lon=lon, radius=radius)})


def find_service_civic(validate: bool = False, **civic: str | None) -> str:
    """Figure 3 (or Figure 5 with VALIDATE): a civic <findService>; CIVIC replaces the RFC's
    elements (None leaves one out)."""
    document = figure(5 if validate else 3)
    for label, value in civic.items():
        old = f"<{label}>{RFC_CIVIC[label]}</{label}>"
        document = _swap(document, {old: "" if value is None else f"<{label}>{value}</{label}>"})
    return document


def list_services(service: str | None = "urn:service:sos") -> str:
    """Figure 11: <listServices>, optionally without its <service>."""
    old = "<service>urn:service:sos</service>"
    return _swap(figure(11), {old: "" if service is None else f"<service>{service}</service>"})


def list_services_by_location(lat: float, lon: float) -> str:
    """Figure 13: <listServicesByLocation> for urn:service:sos."""
    return _swap(figure(13), {"-34.407 150.883": f"{lat} {lon}"})


def baseline_profiles(lat: float, lon: float) -> str:
    """Figure 15: an unknown profile first, then a geodetic-2d Point."""
    return _swap(figure(15), {"<gml:pos>42.656844 -73.348157</gml:pos>":
                              f"<gml:pos>{lat} {lon}</gml:pos>"})


def _swap(document: str, changes: dict[str, str]) -> str:
    for old, new in changes.items():
        assert document.count(old) == 1, f"{old!r} is not in the figure exactly once"
        document = document.replace(old, new)
    return document


# --- answers --------------------------------------------------------------------------------

@cache
def schema() -> etree.RelaxNG:
    return etree.RelaxNG(etree.parse(str(APPENDIX_A)))


@dataclass(frozen=True)
class Mapping:
    """The parts of a <mapping> (RFC 5222, Section 5)."""

    service: str
    uris: list[str]
    service_number: str | None
    display_names: dict[str, str]
    expires: str
    last_updated: datetime
    source: str
    source_id: str


class Answer:
    """A LoST answer that is valid against RFC 5222, read with XPath."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.root = etree.fromstring(body)
        assert schema().validate(self.root), schema().error_log.last_error
        self.kind = etree.QName(self.root).localname

    def xpath(self, path: str) -> list:
        return self.root.xpath(path, namespaces=NS)

    @property
    def error(self) -> tuple[str, str]:
        """(element name, message) of the one error in an <errors> answer."""
        assert self.kind == "errors", self.body.decode()
        [element] = self.xpath("*")
        assert element.get(LANG) == "en"
        return etree.QName(element).localname, element.get("message", "")

    @property
    def mappings(self) -> list[Mapping]:
        return [Mapping(service=m.findtext("lost:service", namespaces=NS),
                        uris=[u.text for u in m.findall("lost:uri", NS)],
                        service_number=m.findtext("lost:serviceNumber", namespaces=NS),
                        display_names={d.get(LANG): d.text for d in m.findall(
                            "lost:displayName", NS)},
                        expires=m.get("expires"),
                        last_updated=datetime.fromisoformat(m.get("lastUpdated")),
                        source=m.get("source"), source_id=m.get("sourceId"))
                for m in self.xpath("lost:mapping")]

    @property
    def warnings(self) -> list[tuple[str, str]]:
        return [(etree.QName(w).localname, w.get("message", ""))
                for w in self.xpath("lost:warnings/*")]

    @property
    def path(self) -> list[str]:
        return [via.get("source") for via in self.xpath("lost:path/lost:via")]

    @property
    def location_used(self) -> str | None:
        used = self.xpath("lost:locationUsed/@id")
        return used[0] if used else None

    @property
    def services(self) -> list[str]:
        return " ".join(self.xpath("lost:serviceList/text()")).split()

    def extension(self, namespace: str) -> dict[str, str]:
        """The attributes and text of the extension element in NAMESPACE (Section 15's
        extensionPoint after <path>)."""
        [element] = self.root.xpath("*[namespace-uri() = $ns]", ns=namespace)
        return {**element.attrib, "text": element.text}


def send(client: FlaskClient, document: str | bytes, content_type: str = MEDIA_TYPE,
         **headers: str) -> Answer:
    """POST DOCUMENT to /lost as RFC 5222, Section 14 asks; every LoST answer is a 2xx of
    application/lost+xml."""
    data = document.encode("utf-8") if isinstance(document, str) else document
    response = client.post("/lost", data=data, headers={
        "Content-Type": content_type, "Cache-Control": "no-cache", **headers})
    assert response.status_code == 200, response.data
    assert response.mimetype == MEDIA_TYPE
    return Answer(response.data)
