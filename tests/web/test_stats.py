"""The statistics page and its CSV exports, on the hand-checked dataset of tests/core."""

from __future__ import annotations

import ast
import csv
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.models import Municipality, Organisation, ParticipantStatus
from core.stats import MAX_MONTHS
from tests.core.test_stats import Dataset, _resident, build_dataset, organisations
from tests.web.helpers import login_as
from web import stats as stats_page
from web.i18n import ENGLISH
from web.stats import guard_formula

PERIOD = "van=2025-01&tot=2025-06"


class _Tables(HTMLParser):
    """The text of every cell of every table, by table id."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: list[list[str]] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._table = self.tables.setdefault(dict(attrs).get("id") or "", [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self._table[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def tables(page: str) -> dict[str, list[list[str]]]:
    parser = _Tables()
    parser.feed(page)
    return parser.tables


def chart_json(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="stats-data">(.*?)</script>', page,
                      re.S)
    assert match, page
    return json.loads(match.group(1))


def read_csv(body: bytes, delimiter: str = ";") -> list[list[str]]:
    assert body.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig")), delimiter=delimiter))


@pytest.fixture
def data(app: object, sessions: sessionmaker[Session]) -> Dataset:
    """The dataset with the demo centralist's organisation as "mine"."""
    with sessions() as session:
        mine = session.scalar(select(Organisation).where(
            Organisation.name == "Politie Midden-Nederland"))
        _, other = organisations(session)
        dataset = build_dataset(session, mine, other)
        session.commit()
    return dataset


def test_a_centralist_sees_only_the_actions_of_their_own_organisation(
        client: FlaskClient, data: Dataset) -> None:
    login_as(client, "centralist")
    response = client.get(f"/statistiek/?{PERIOD}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    found = tables(page)
    months = found["table-acties-per-maand"]
    assert months[0] == ["Maand", "Verdachte", "Voertuig", "Vermiste persoon", "AMBER Alert",
                         "Buurtonderzoek", "Preventief bericht", "Totaal"]
    assert months[1] == ["jan 2025", "3", "0", "0", "0", "0", "0", "3"]
    assert months[2] == ["feb 2025", "0", "1", "0", "0", "0", "0", "1"]  # no AMBER of B
    assert months[4] == ["apr 2025", "0", "0", "1", "0", "0", "0", "1"]
    assert months[-1] == ["Totaal", "3", "1", "1", "0", "0", "0", "5"]
    assert found["table-succes-per-soort"][1:] == [
        ["Verdachte", "3", "0", "1", "1", "1", "33,3 %"],
        ["Voertuig", "1", "1", "0", "0", "0", "100,0 %"]]
    assert found["table-bellers-per-soort"][1:] == [
        ["Verdachte", "3", "1", "33,3 %"], ["Voertuig", "1", "1", "100,0 %"],
        ["Vermiste persoon", "1", "0", "0,0 %"], ["Totaal", "5", "2", "40,0 %"]]
    assert found["table-aflevering-per-kanaal"][0][2:4] == ["Afgeleverd of opgenomen",
                                                            "Ingesproken op voicemail"]
    assert found["table-aflevering-per-kanaal"][1:] == [
        ["Spraak", "3", "1", "1", "0", "1", "0", "33,3 %", "33,3 %"],
        ["Sms", "4", "2", "0", "1", "1", "0", "50,0 %", "25,0 %"],
        ["E-mail", "1", "0", "0", "1", "0", "0", "0,0 %", "0,0 %"],
        ["Push", "2", "0", "0", "0", "0", "2", "0,0 %", "0,0 %"]]
    assert "alleen die van Politie Midden-Nederland" in page


def test_an_admin_sees_every_organisation(client: FlaskClient, data: Dataset) -> None:
    login_as(client, "admin")
    found = tables(client.get(f"/statistiek/?{PERIOD}").get_data(as_text=True))
    assert found["table-acties-per-maand"][2] == ["feb 2025", "0", "1", "0", "1", "0", "0", "2"]
    assert ["AMBER Alert", "1", "1", "0", "0", "0", "100,0 %"] in found["table-succes-per-soort"]


def test_a_municipality_officer_sees_their_own_organisation_and_all_participants(
        client: FlaskClient, data: Dataset, sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        utrecht = session.scalar(select(Municipality).where(Municipality.code == "GM0344"))
        utrecht.population = None
        _resident(session, 1, utrecht, ParticipantStatus.VERIFIED)
        session.commit()
    login_as(client, "municipality_officer")
    found = tables(client.get(f"/statistiek/?{PERIOD}").get_data(as_text=True))
    assert found["table-acties-per-maand"][-1][-1] == "0"
    assert ["GM0344", "Utrecht", "1", "–", "–"] in found["table-deelnemers-per-gemeente"]
    assert found["table-deelnemers-per-regio"][9][:3] == ["VR09", "Utrecht", "1"]
    assert found["table-deelnemers-per-regio"][9][3:] == ["–", "–"]


def test_the_charts_draw_the_numbers_of_the_tables(client: FlaskClient, data: Dataset) -> None:
    login_as(client, "centralist")
    page = client.get(f"/statistiek/?{PERIOD}").get_data(as_text=True)
    charts = chart_json(page)
    months = charts["months"]
    assert months["labels"] == ["jan 2025", "feb 2025", "mrt 2025", "apr 2025", "mei 2025",
                                "jun 2025"]
    assert months["datasets"][0] == {"label": "Verdachte", "data": [3, 0, 0, 0, 0, 0]}
    assert charts["success"]["datasets"][0]["data"] == [33.33, 100.0]
    assert charts["calls"]["datasets"][0]["data"] == [33.33, 100.0, 0.0]
    assert [d["data"] for d in charts["delivery"]["datasets"]] == [
        [1, 2, 0, 0], [1, 0, 0, 0], [0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 2]]
    assert charts["delivery"]["datasets"][1]["label"] == "Ingesproken op voicemail"
    for name in ("months", "success", "calls", "municipalities", "delivery"):
        assert f'id="chart-{name}"' in page
    assert "vendor/chart.js-4.4.9/chart.umd.js" in page and "stats/stats.js" in page


def test_names_in_the_chart_data_cannot_break_out_of_the_script(
        client: FlaskClient, sessions: sessionmaker[Session]) -> None:
    hostile = "</script><script>alert(1)</script>"
    with sessions() as session:
        place = session.scalar(select(Municipality).where(Municipality.code == "GM0344"))
        place.name, place.population = hostile, 10
        _resident(session, 1, place, ParticipantStatus.VERIFIED)
        session.commit()
    login_as(client, "admin")
    page = client.get("/statistiek/").get_data(as_text=True)
    assert "<script>alert(1)" not in page
    assert chart_json(page)["municipalities"]["labels"][0] == hostile
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in page


def test_the_municipality_table_sorts_by_coverage_with_the_best_and_worst_apart(
        client: FlaskClient, sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        places = {m.code: m for m in session.scalars(select(Municipality).where(
            Municipality.code.in_(["GM0344", "GM0632", "GM0307"])))}
        for code, population in (("GM0344", 1000), ("GM0632", 100), ("GM0307", 400)):
            places[code].population = population
        for n, code in enumerate(["GM0344", "GM0632", "GM0632", "GM0307"]):
            _resident(session, n, places[code], ParticipantStatus.VERIFIED)
        session.commit()
    login_as(client, "admin")
    page = client.get("/statistiek/?sorteer=dekking&volgorde=af").get_data(as_text=True)
    found = tables(page)
    rows = found["table-deelnemers-per-gemeente"]
    assert [row[0] for row in rows[1:4]] == ["GM0632", "GM0307", "GM0344"]
    assert rows[1] == ["GM0632", "Woerden", "2", "100", "20,0"]
    assert [row[0] for row in found["table-top-gemeenten"][1:4]] == \
        ["Woerden", "Amersfoort", "Utrecht"]
    least = found["table-bottom-gemeenten"][1]
    assert (least[1], least[3]) == ("0", "0,0")  # some municipality without participants
    assert 'aria-sort="descending"' in page and 'id="sort-dekking"' in page


def test_each_table_exports_as_csv_that_excel_and_the_csv_module_read(
        client: FlaskClient, data: Dataset) -> None:
    login_as(client, "centralist")
    response = client.get(f"/statistiek/acties-per-maand.csv?{PERIOD}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == \
        'attachment; filename="acties-per-maand_2025-01_2025-06.csv"'
    rows = read_csv(response.data)
    assert rows[0][0] == "Maand" and rows[0][-1] == "Totaal"
    assert rows[1] == ["2025-01", "3", "0", "0", "0", "0", "0", "3"]
    assert rows[-1] == ["Totaal", "3", "1", "1", "0", "0", "0", "5"]
    success = read_csv(client.get(f"/statistiek/succes-per-soort.csv?{PERIOD}").data)
    assert success[1] == ["Verdachte", "3", "0", "1", "1", "1", "33,3"]
    calls = read_csv(client.get(f"/statistiek/bellers-per-soort.csv?{PERIOD}").data)
    assert calls[-1] == ["Totaal", "5", "2", "40,0"]
    delivery = read_csv(client.get(f"/statistiek/aflevering-per-kanaal.csv?{PERIOD}&doel=result"
                                   ).data)
    assert [row[:2] for row in delivery[1:]] == [["Spraak", "0"], ["Sms", "1"],
                                                 ["E-mail", "0"], ["Push", "0"]]
    places = read_csv(client.get("/statistiek/deelnemers-per-gemeente.csv").data)
    assert places[0] == ["CBS-code", "Gemeente", "Deelnemers", "Inwoners", "Per 1.000 inwoners"]
    assert len(places) == 1 + 342 + 1
    assert places[-1] == ["", "Totaal", "0", "17472870", "0,0"]
    regions = read_csv(client.get("/statistiek/deelnemers-per-regio.csv").data)
    assert regions[0] == ["Code", "Veiligheidsregio", "Deelnemers", "Inwoners",
                          "Per 1.000 inwoners"]
    assert len(regions) == 1 + 25 + 1


def test_the_english_csv_has_english_headers_and_commas(client: FlaskClient,
                                                       data: Dataset) -> None:
    login_as(client, "centralist")
    body = client.get(f"/statistiek/succes-per-soort.csv?{PERIOD}&lang=en").data
    rows = read_csv(body, delimiter=",")
    assert rows[0] == ["Kind", "Ended", "Found", "Arrested", "Not found", "Cancelled",
                       "Success"]
    assert rows[1] == ["Suspect", "3", "0", "1", "1", "1", "33.3"]


@pytest.mark.parametrize("cell", ["=1+2", "+31690001234", "-5", "@SUM(A1)", "\t=1", "\r=1"])
def test_cells_that_a_spreadsheet_would_run_are_quoted(cell: str) -> None:
    assert guard_formula(cell) == "'" + cell
    assert guard_formula("Utrecht") == "Utrecht"


def test_a_municipality_name_like_a_formula_is_exported_inert(
        client: FlaskClient, sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        place = session.scalar(select(Municipality).where(Municipality.code == "GM0344"))
        place.name = '=HYPERLINK("http://example.org","x")'
        session.commit()
    login_as(client, "centralist")
    rows = read_csv(client.get("/statistiek/deelnemers-per-gemeente.csv").data)
    assert ["GM0344", "'=HYPERLINK(\"http://example.org\",\"x\")", "0", "359185", "0,0"] in rows


@pytest.mark.parametrize(("query", "field", "message"), [
    ("van=2025-13&tot=2025-06", "stats-from-error",
     "Geef een maand als jjjj-mm, bijvoorbeeld 2025-03."),
    ("van=2025-06&tot=2025-01", "stats-from-error", "De beginmaand ligt na de eindmaand."),
    ("van=2025-01&tot=2999-01", "stats-to-error", "De periode kan niet na deze maand eindigen."),
    ("doel=spam", "stats-purpose-error", "Kies een doel uit de lijst."),
])
def test_a_wrong_period_is_refused_with_a_dutch_message_and_kept(
        client: FlaskClient, query: str, field: str, message: str) -> None:
    login_as(client, "centralist")
    response = client.get(f"/statistiek/?{query}")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert re.search(rf'id="{field}"[^>]*>{re.escape(message)}</span>', page)
    typed = dict(part.split("=") for part in query.split("&"))
    if "van" in typed:
        assert f'value="{typed["van"]}"' in page
    assert "table-acties-per-maand" not in page
    csv_response = client.get(f"/statistiek/acties-per-maand.csv?{query}")
    assert csv_response.status_code == 400
    assert message in csv_response.get_data(as_text=True)


def test_the_page_is_in_english_with_lang_en(client: FlaskClient, data: Dataset) -> None:
    login_as(client, "centralist")
    page = client.get(f"/statistiek/?{PERIOD}&lang=en").get_data(as_text=True)
    assert "<h1>Statistics</h1>" in page and "Actions per month" in page
    found = tables(page)
    assert found["table-acties-per-maand"][1][0] == "Jan 2025"
    assert found["table-succes-per-soort"][1] == ["Suspect", "3", "0", "1", "1", "1", "33.3%"]
    error = client.get("/statistiek/?van=garbage").get_data(as_text=True)
    assert "Give a month as yyyy-mm, for example 2025-03." in error


def test_the_default_period_is_the_last_twelve_months(client: FlaskClient) -> None:
    login_as(client, "centralist")
    months = tables(client.get("/statistiek/").get_data(as_text=True))["table-acties-per-maand"]
    assert len(months) == 1 + 12 + 1


def test_statistics_need_a_login_and_unknown_tables_are_not_found(client: FlaskClient) -> None:
    assert client.get("/statistiek/").status_code == 302
    assert client.get("/statistiek/acties-per-maand.csv").status_code == 302
    login_as(client, "centralist")
    assert client.get("/statistiek/geheim.csv").status_code == 404


def test_the_vendored_chart_library_is_served_with_its_licence(client: FlaskClient) -> None:
    script = client.get("/static/vendor/chart.js-4.4.9/chart.umd.js")
    assert script.status_code == 200 and b"Chart.js v4.4.9" in script.data[:200]
    script.close()
    licence = client.get("/static/vendor/chart.js-4.4.9/LICENSE.md")
    assert b"MIT" in licence.data
    licence.close()


def _dutch_texts() -> set[str]:
    """Every Dutch text the statistics and audit pages may show."""
    root = Path(__file__).resolve().parents[2]
    texts: set[str] = set()
    for template in [*(root / "web/templates/stats").glob("*.html"),
                     *(root / "web/templates/admin").glob("*.html")]:
        texts |= set(re.findall(r"_\('([^']+)'", template.read_text()))
        texts |= set(re.findall(r"field\('[^']+', '[^']+', '([^']+)'", template.read_text()))
    for module in ("web/stats.py", "web/admin.py", "core/stats.py"):
        for node in ast.walk(ast.parse((root / module).read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "_" and \
                    isinstance(node.args[0], ast.Constant):
                texts.add(node.args[0].value)
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and \
                    isinstance(node.targets[0], ast.Subscript) and \
                    getattr(node.targets[0].value, "id", None) == "errors":
                texts.add(node.value.value)
    texts |= {*stats_page.KIND_LABELS.values(), *stats_page.OUTCOME_LABELS.values(),
              *stats_page.CHANNEL_LABELS.values(), *stats_page.PURPOSE_LABELS.values(),
              f"Kies een periode van hoogstens {MAX_MONTHS} maanden."}
    return texts


def test_every_dutch_text_of_these_pages_has_an_english_translation() -> None:
    texts = _dutch_texts()
    assert len(texts) > 90 and {"Download als CSV", "Wis filters", "Verdachte"} <= texts
    assert sorted(text for text in texts if text not in ENGLISH) == []


def test_the_reach_map_has_the_tables_numbers_classes_and_a_legend(
        client: FlaskClient, sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        places = {m.code: m for m in session.scalars(select(Municipality).where(
            Municipality.code.in_(["GM0344", "GM0632"])))}
        for n in range(4):
            _resident(session, n, places["GM0632" if n else "GM0344"], ParticipantStatus.VERIFIED)
        session.commit()
    login_as(client, "admin")
    page = client.get("/statistiek/").get_data(as_text=True)
    reach = json.loads(re.search(r'<script type="application/json" id="reach-data">(.*?)</script>',
                                 page, re.S)[1])
    woerden = reach["figures"]["municipalities"]["GM0632"]
    assert woerden == [3000 / 52695, 3, 52695, "Woerden"]
    assert reach["region_of"]["GM0632"] == "VR09"
    utrecht_region = reach["figures"]["regions"]["VR09"]
    assert utrecht_region[1] == 4 and utrecht_region[3] == "Utrecht"
    for view in ("municipalities", "regions"):
        legend = reach["legends"][view]
        values = [v[0] for v in reach["figures"][view].values() if v[0] is not None]
        assert legend["breaks"] == sorted(legend["breaks"]) and max(values) <= legend["breaks"][-1]
        assert len(legend["colours"]) == len(legend["labels"]) == len(legend["breaks"])
        assert f'id="reach-legend-{view}"' in page
    assert 'data-boundaries-url="/console/map/municipalities.geojson"' in page
