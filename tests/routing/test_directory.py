
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Meldkamer, Municipality, Postcode, SafetyRegion
from routing.directory import (
    UnknownPlace,
    boundary_index,
    meldkamer,
    meldkamers,
    place_at_point,
    place_by_name,
    place_for_postcode,
)
from tests.routing.conftest import seconds_per_call


def _meldkamer_of_postcode(db: Session, pc4: str) -> str:
    """The answer straight from the reference tables, to compare the directory with."""
    return db.scalar(
        select(Meldkamer.code).join(SafetyRegion, SafetyRegion.meldkamer_id == Meldkamer.id)
        .join(Municipality, Municipality.safety_region_id == SafetyRegion.id)
        .join(Postcode, Postcode.municipality_id == Municipality.id).where(Postcode.pc4 == pc4))


def test_the_directory_has_every_meldkamer_with_its_fallback(db: Session) -> None:
    directory = meldkamers(db)
    assert len(directory) == 10 and all(m.reachable for m in directory.values())
    mn = meldkamer(db, "MN")
    assert mn is not None and mn.name == "Meldkamer Midden-Nederland"
    assert (mn.phone, mn.sip_uri, mn.fallback_code) == (
        "+31690000103", "sip:+31690000103@127.0.0.1:5060", "ON")
    assert meldkamer(db, "XX") is None


def test_postcode_3441_is_woerden_in_the_utrecht_region(db: Session) -> None:
    # core/data: pc4.csv 3441 -> GM0632 Woerden; municipalities.csv -> VR09; VR09 -> MN
    place = place_for_postcode(db, "3441")
    assert (place.municipality_code, place.municipality, place.region) == (
        "GM0632", "Woerden", "Utrecht")
    assert place.meldkamer_code == "MN" == _meldkamer_of_postcode(db, "3441")


@pytest.mark.parametrize(("pc4", "code"), [("2611", "DH"), ("6211", "LB"), ("5111", "ZWB"),
                                          ("1012", "AM"), ("9711", "NN")])
def test_postcodes_elsewhere_reach_their_own_meldkamer(db: Session, pc4: str, code: str) -> None:
    assert place_for_postcode(db, pc4).meldkamer_code == code == _meldkamer_of_postcode(db, pc4)


def test_an_unknown_postcode_is_named(db: Session) -> None:
    assert db.get(Postcode, "1004") is None
    with pytest.raises(UnknownPlace, match="postcode 1004 is not a known PC4 area"):
        place_for_postcode(db, "1004")


@pytest.mark.parametrize(("lat", "lon", "code", "municipality"), [
    (52.0907, 5.1214, "MN", "Utrecht"),
    (52.3728, 4.8936, "AM", "Amsterdam"),
    (51.9225, 4.4792, "RT", "Rotterdam"),
    (50.8498, 5.6889, "LB", "Maastricht"),
])
def test_a_point_in_a_municipality_reaches_its_meldkamer(db: Session, lat: float, lon: float,
                                                          code: str, municipality: str) -> None:
    place = place_at_point(db, lat, lon)
    assert (place.meldkamer_code, place.municipality, place.distance_m) == (
        code, municipality, 0.0)


@pytest.mark.parametrize(("where", "lat", "lon", "code", "municipality"), [
    ("Lanaken (BE), west of Maastricht", 50.893, 5.647, "LB", "Maastricht"),
    ("Visé (BE), south of Eijsden", 50.735, 5.695, "LB", "Eijsden-Margraten"),
    ("Poppel (BE), east of Baarle", 51.447, 5.040, "ZWB", "Baarle-Nassau"),
    ("Emmerich (DE)", 51.835, 6.245, "ON", "Montferland"),
    ("North Sea off Noordwijk", 52.300, 4.350, "DH", "Noordwijk"),
])
def test_a_point_just_across_the_border_reaches_the_nearest_dutch_region(
        db: Session, where: str, lat: float, lon: float, code: str, municipality: str) -> None:
    place = place_at_point(db, lat, lon)
    assert (place.meldkamer_code, place.municipality) == (code, municipality), where
    assert 1_000 < place.distance_m < 10_000
    assert "km outside" in place.describe()


@pytest.mark.parametrize(("lat", "lon", "message"), [
    (50.85, 4.35, "more than 25 km from every Dutch municipality"),  # Brussels
    (53.3, 3.3, "more than 25 km"),  # North Sea
    (40.71, -74.0, "outside Europe"),
    (float("nan"), 5.0, "must be numbers"),
])
def test_a_point_far_from_the_netherlands_has_no_place(db: Session, lat: float, lon: float,
                                                       message: str) -> None:
    with pytest.raises(UnknownPlace, match=message):
        place_at_point(db, lat, lon)


def test_a_civic_city_is_found_by_municipality_or_place_name(db: Session) -> None:
    assert place_by_name(db, "woerden").municipality_code == "GM0632"
    assert place_by_name(db, "Harmelen").municipality == "Woerden"
    with pytest.raises(UnknownPlace, match="not a known municipality or place"):
        place_by_name(db, "Atlantis")


def test_point_lookups_take_well_under_a_millisecond_after_warm_up(db: Session) -> None:
    index = boundary_index(db)
    assert boundary_index(db) is index and len(index.places) == 342
    points = [(50.75 + i * 0.0028, 3.4 + (i * 37 % 1000) * 0.0038) for i in range(1000)]

    def find_all() -> None:
        for lat, lon in points:
            index.find(lat, lon)

    assert seconds_per_call(find_all, 1) / len(points) < 0.001


def test_the_boundary_index_follows_a_change_of_the_reference_data(db: Session) -> None:
    """`burgernet load-reference` in another process reaches a running IVR or web process
    within one check, without a restart."""
    index = boundary_index(db)
    assert index.find(52.0907, 5.1214).meldkamer_code == "MN"
    elsewhere = db.scalar(select(SafetyRegion).join(Meldkamer).where(Meldkamer.code == "NN")
                          .order_by(SafetyRegion.id).limit(1))
    utrecht = db.scalar(select(Municipality).where(Municipality.name == "Utrecht"))
    utrecht.safety_region_id = elsewhere.id
    db.flush()
    assert boundary_index(db) is index  # not checked again yet
    changed = boundary_index(db, check_every=0)
    assert changed is not index and changed.find(52.0907, 5.1214).meldkamer_code == "NN"
    assert boundary_index(db, check_every=0) is changed  # checked: nothing changed since
