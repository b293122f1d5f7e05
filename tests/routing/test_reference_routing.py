"""Every postcode of the shipped reference data reaches the meldkamer of its municipality's
safety region, whether the caller keys it or stands on its point.

The expectation is read from the CSV files themselves (pc4 → municipality → safety region →
meldkamer), not from the database the routing reads, so a loader that mislinks a row fails.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from core.settings import DEFAULT_DATA_DIR
from routing.resolve import RouteRequest, resolve
from tests.routing.conftest import NOW


def _rows(name: str) -> list[dict[str, str]]:
    with Path(DEFAULT_DATA_DIR, name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _expected_meldkamers() -> dict[str, tuple[str, float, float]]:
    """pc4 → (meldkamer code, lat, lon) straight from the files."""
    region_of = {row["code"]: row["safety_region"] for row in _rows("municipalities.csv")}
    meldkamer_of = {row["code"]: row["meldkamer"] for row in _rows("safety_regions.csv")}
    return {row["pc4"]: (meldkamer_of[region_of[row["municipality"]]], float(row["lat"]),
                         float(row["lon"]))
            for row in _rows("pc4.csv")}


EXPECTED = _expected_meldkamers()


def test_every_postcode_routes_to_its_regions_meldkamer_keyed_and_by_its_point(
        db: Session) -> None:
    keyed, located = {}, {}
    for pc4, (_, lat, lon) in EXPECTED.items():
        by_key = resolve(db, RouteRequest(postcode=pc4), NOW, national_fallback="MN")
        by_point = resolve(db, RouteRequest(lat=lat, lon=lon), NOW, national_fallback="MN")
        assert (by_key.reason, by_point.reason) == ("postcode", "coordinates"), pc4
        keyed[pc4], located[pc4] = by_key.meldkamer_code, by_point.meldkamer_code
    expected = {pc4: code for pc4, (code, _, _) in EXPECTED.items()}
    assert keyed == expected
    assert located == expected
    assert len(expected) == 4799


@pytest.mark.parametrize(("pc4", "meldkamer", "place"), [
    ("9999", "NN", "Stitswerd (Eemsdelta), once sent to Oost-Nederland"),
    ("6300", "LB", "Valkenburg (Limburg), once sent to Den Haag"),
    ("5217", "OB", "'s-Hertogenbosch PO boxes, once sent to Den Haag"),
    ("2400", "DH", "Alphen aan den Rijn PO boxes"),
])
def test_the_postcodes_the_old_table_misrouted(db: Session, pc4: str, meldkamer: str,
                                               place: str) -> None:
    decision = resolve(db, RouteRequest(postcode=pc4), NOW, national_fallback="MN")
    assert decision.meldkamer_code == meldkamer, place
