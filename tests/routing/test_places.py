"""Place search on the reference data: postcodes (PC4 and PC6), place and municipality names
without regard to case and accents, ranking, coordinates in the forms people type, errors,
the index cache and its speed."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import pytest
import shapely
from shapely.geometry import shape
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.db import make_engine
from core.models import Municipality, Postcode
from core.schema import ensure_schema
from routing.directory import place_at_point
from routing.place_index import (
    PC4_MAX_M,
    PC4_MIN_M,
    TOWN_CENTRE,
    PlaceKind,
    distance_m,
    normalise,
)
from routing.places import (
    MAX_QUERY,
    PlaceQueryError,
    TypedPoint,
    parse_coordinates,
    place_index,
    search_places,
)


def labels(db: Session, query: str, limit: int = 10) -> list[str]:
    return [s.label for s in search_places(db, query, limit)]


def pc4_rows(db: Session, place: str) -> list[Postcode]:
    return list(db.scalars(select(Postcode).where(Postcode.place == place,
                                                  Postcode.assignment.not_in(TOWN_CENTRE))))


# --- postcodes ---------------------------------------------------------------------------

def test_a_pc4_centres_on_its_centroid_with_a_radius_of_one_to_two_and_a_half_km(
        db: Session) -> None:
    [found] = search_places(db, "3511")
    row = db.get(Postcode, "3511")
    assert (found.label, found.kind) == ("3511 Utrecht", PlaceKind.POSTCODE)
    assert (found.lat, found.lon) == (row.lat, row.lon)
    assert PC4_MIN_M <= found.radius_m <= PC4_MAX_M
    assert (found.municipality_code, found.municipality) == ("GM0344", "Utrecht")
    assert (found.meldkamer_code, found.meldkamer) == ("MN", "Meldkamer Midden-Nederland")
    assert found.note is None


@pytest.mark.parametrize("typed", ["3511 AB", "3511AB", "3511ab", " 3511  aB "])
def test_a_pc6_goes_to_its_pc4_and_says_so(db: Session, typed: str) -> None:
    [found] = search_places(db, typed)
    assert found.label == "3511 Utrecht" and found.kind == PlaceKind.POSTCODE
    assert found.note is not None and found.note.id == "pc6_as_pc4"
    assert dict(found.note.values) == {"pc6": "3511 AB", "pc4": "3511"}


def test_fewer_digits_list_the_pc4_areas_that_start_with_them_in_order(db: Session) -> None:
    found = labels(db, "351")
    pc4s = [label.split()[0] for label in found]
    assert pc4s == sorted(pc4s) and all(pc4.startswith("351") for pc4 in pc4s)
    assert "3511" in pc4s and len(found) <= 10
    assert len(search_places(db, "3", limit=4)) == 4


def test_an_unknown_postcode_finds_nothing(db: Session) -> None:
    known = set(db.scalars(select(Postcode.pc4)))
    missing = next(str(n) for n in range(1000, 10_000) if str(n) not in known)
    assert search_places(db, missing) == [] and search_places(db, f"{missing} AB") == []
    assert search_places(db, "0999") == []


def test_a_po_box_postcode_goes_to_the_middle_of_its_place_and_says_so(db: Session) -> None:
    row = db.get(Postcode, "1002")
    assert (row.assignment, row.population) == ("place+vicinity", 0)  # the town's centre
    [found] = search_places(db, "1002")
    assert found.note is not None and found.note.id == "po_box"
    assert dict(found.note.values) == {"place": "Amsterdam"}
    assert found.radius_m > PC4_MAX_M  # all of Amsterdam, not one PC4 area
    assert place_at_point(db, found.lat, found.lon).municipality == "Amsterdam"


# --- names ---------------------------------------------------------------------------------

@pytest.mark.parametrize("typed", ["Fryslân", "fryslan", "FRYSLÂN", "  fryslân "])
def test_names_match_without_regard_to_case_and_accents(db: Session, typed: str) -> None:
    assert set(labels(db, typed)[:2]) == {"Súdwest-Fryslân", "Noardeast-Fryslân"}


def test_punctuation_does_not_matter(db: Session) -> None:
    assert labels(db, "s-grav")[0] == "'s-Gravenhage"
    assert labels(db, "'s gravenhage")[0] == "'s-Gravenhage"
    assert labels(db, "sgravenhage")[0] == "'s-Gravenhage"
    assert normalise("'s-Hertogenbosch") == "s hertogenbosch"


def test_den_haag_and_den_bosch_find_their_municipalities(db: Session) -> None:
    [haag] = search_places(db, "Den Haag", limit=1)
    assert haag.kind == PlaceKind.MUNICIPALITY and haag.municipality == "'s-Gravenhage"
    assert haag.label == "'s-Gravenhage (Den Haag)" and haag.meldkamer_code == "DH"
    assert search_places(db, "den bosch")[0].municipality == "'s-Hertogenbosch"


def test_whole_names_then_prefixes_then_words_then_substrings(db: Session) -> None:
    found = labels(db, "houten", limit=25)
    assert found[0] == "Houten" and "Vierhouten" in found
    keys = [normalise(label) for label in labels(db, "hout", limit=25)]

    def tier(key: str) -> int:
        return 0 if key.startswith("hout") else 1 if " hout" in key else 2

    assert [tier(key) for key in keys] == sorted(tier(key) for key in keys)
    assert tier(keys[-1]) == 2  # a substring-only match is there, after the others


def test_a_bigger_place_comes_first_within_a_tier(db: Session) -> None:
    found = labels(db, "ams")
    assert found.index("Amsterdam") < found.index("Amstelveen")


def test_a_municipality_and_its_namesake_place_are_one_suggestion(db: Session) -> None:
    found = search_places(db, "Houten", limit=25)
    houten = [s for s in found if normalise(s.label) == "houten"]
    assert len(houten) == 1 and houten[0].kind == PlaceKind.MUNICIPALITY
    every = search_places(db, "a", limit=25)
    assert len({(s.kind, s.label) for s in every}) == len(every)


def test_a_place_of_many_pc4_areas_is_one_suggestion_covering_all_of_them(
        db: Session) -> None:
    rows = pc4_rows(db, "Hoofddorp")
    assert len(rows) >= 5
    [found] = [s for s in search_places(db, "Hoofddorp") if s.label == "Hoofddorp"]
    assert found.kind == PlaceKind.PLACE and found.municipality == "Haarlemmermeer"
    assert found.lat == pytest.approx(sum(r.lat for r in rows) / len(rows))
    assert found.lon == pytest.approx(sum(r.lon for r in rows) / len(rows))
    assert all(distance_m(found.lat, found.lon, r.lat, r.lon) + PC4_MIN_M <= found.radius_m
               for r in rows)


def test_places_of_one_name_in_different_municipalities_are_told_apart(db: Session) -> None:
    found = search_places(db, "Valkenburg")
    assert [s.kind for s in found[:1]] == [PlaceKind.MUNICIPALITY]  # Valkenburg aan de Geul
    katwijk = [s for s in found if s.label == "Valkenburg (Katwijk)"]
    assert len(katwijk) == 1 and katwijk[0].meldkamer_code == "DH"


def test_a_municipality_circle_covers_its_whole_boundary(db: Session) -> None:
    [found] = [s for s in search_places(db, "Houten") if s.kind == PlaceKind.MUNICIPALITY]
    boundary = shape(db.scalar(select(Municipality.boundary)
                               .where(Municipality.code == found.municipality_code)))
    corners = shapely.get_coordinates(boundary)
    farthest = max(distance_m(found.lat, found.lon, lat, lon) for lon, lat in corners)
    assert found.radius_m - 100 < farthest <= found.radius_m  # rounded up to 100 m


def test_nothing_found_is_an_empty_list(db: Session) -> None:
    assert search_places(db, "xyzzy") == []
    assert search_places(db, "!!") == []


def test_at_most_limit_suggestions(db: Session) -> None:
    assert len(search_places(db, "a")) == 10
    assert len(search_places(db, "a", limit=3)) == 3
    assert len(search_places(db, "a", limit=25)) == 25


# --- coordinates -----------------------------------------------------------------------------

@pytest.mark.parametrize(("typed", "lat", "lon"), [
    ("52.0907, 5.1214", 52.0907, 5.1214),
    ("52.0907 5.1214", 52.0907, 5.1214),
    ("52.0907,5.1214", 52.0907, 5.1214),
    ("52,0907 5,1214", 52.0907, 5.1214),
    ("52,0907, 5,1214", 52.0907, 5.1214),
    ("52.0907; 5.1214", 52.0907, 5.1214),
    ("N 52.0907 E 5.1214", 52.0907, 5.1214),
    ("N52.0907 E5.1214", 52.0907, 5.1214),
    ("52.0907N 5.1214E", 52.0907, 5.1214),
    ("52.0907 N, 5.1214 E", 52.0907, 5.1214),
    ("E 5.1214 N 52.0907", 52.0907, 5.1214),
    ("52,0907 NB 5,1214 OL", 52.0907, 5.1214),
    ("52°05'26.5\"N 5°07'17.0\"E", 52 + 5 / 60 + 26.5 / 3600, 5 + 7 / 60 + 17 / 3600),
    ("52° 05′ 26.5″ N, 5° 07′ 17″ E", 52 + 5 / 60 + 26.5 / 3600, 5 + 7 / 60 + 17 / 3600),
    ("-33.9, 18.4", -33.9, 18.4),
    ("33.9 S 18.4 E", -33.9, 18.4),
    ("40.7 N 74.0 W", 40.7, -74.0),
])
def test_coordinates_are_read_in_the_forms_people_type(typed: str, lat: float,
                                                       lon: float) -> None:
    point = parse_coordinates(typed)
    assert point is not None
    assert (point.lat, point.lon) == (pytest.approx(lat), pytest.approx(lon))


@pytest.mark.parametrize("typed", ["52", "52.09", "52 5", "52,0", "52.09, 5", "52.09,",
                                   "3511 AB", "Houten", "52.1 5.1 4.3"])
def test_a_half_typed_or_bare_number_is_not_taken_for_coordinates(typed: str) -> None:
    assert parse_coordinates(typed) is None


@pytest.mark.parametrize("typed", ["95.1, 5.1", "52.1, 185.0", "52.09 N 5.12 N",
                                   "52°61'N 5°07'E"])
def test_impossible_coordinates_are_refused(db: Session, typed: str) -> None:
    with pytest.raises(PlaceQueryError) as caught:
        search_places(db, typed)
    assert caught.value.error_id == "invalid_coordinates"


def test_coordinates_centre_a_small_circle_in_their_municipality(db: Session) -> None:
    [found] = search_places(db, "52.0907, 5.1214")
    assert found.kind == PlaceKind.COORDINATES and found.label == "52.09070, 5.12140"
    assert (found.lat, found.lon, found.radius_m) == (52.0907, 5.1214, 1000)
    assert (found.municipality, found.meldkamer_code, found.note) == ("Utrecht", "MN", None)


def test_latitude_and_longitude_the_wrong_way_round_are_turned(db: Session) -> None:
    [found] = search_places(db, "5.1214, 52.0907")
    assert (found.lat, found.lon) == (52.0907, 5.1214)
    assert found.note is not None and found.note.id == "swapped"
    with pytest.raises(PlaceQueryError):  # with compass letters the user said which is which
        search_places(db, "5.1214 N, 52.0907 E")


def test_a_point_just_across_the_border_gets_the_nearest_municipality(db: Session) -> None:
    [found] = search_places(db, "51.2194, 4.4025")  # Antwerp
    assert found.note is not None and found.note.id == "outside_municipality"
    assert float(found.note.values["km"]) > 5
    assert found.municipality == found.note.values["municipality"]


@pytest.mark.parametrize("typed", ["48.8566, 2.3522", "-33.9, 18.4", "0.0, 0.0"])
def test_coordinates_far_from_the_netherlands_are_refused_with_the_reason(
        db: Session, typed: str) -> None:
    with pytest.raises(PlaceQueryError, match="more than 25 km") as caught:
        search_places(db, typed)
    assert caught.value.error_id == "outside_netherlands"


# --- bad queries -------------------------------------------------------------------------------

@pytest.mark.parametrize(("query", "limit", "error_id"), [
    ("", 10, "empty_query"), ("   \t ", 10, "empty_query"),
    ("a" * (MAX_QUERY + 1), 10, "query_too_long"),
    ("3511", 0, "invalid_limit"), ("3511", 26, "invalid_limit"),
])
def test_an_empty_or_too_long_query_is_refused(db: Session, query: str, limit: int,
                                               error_id: str) -> None:
    with pytest.raises(PlaceQueryError) as caught:
        search_places(db, query, limit)
    assert caught.value.error_id == error_id
    assert search_places(db, "a" * MAX_QUERY) == []  # the longest allowed is searched


# --- the index ---------------------------------------------------------------------------------

def test_the_index_is_built_once_and_rebuilt_when_the_reference_data_changes(
        db: Session) -> None:
    index = place_index(db)
    assert place_index(db) is index
    assert place_index(db, check_every=0) is index  # checked: nothing changed
    db.execute(update(Postcode).where(Postcode.place == "Hoofddorp").values(place="Hoofddrop"))
    db.flush()
    assert place_index(db) is index  # not checked again yet
    changed = place_index(db, check_every=0)
    assert changed is not index
    assert labels(db, "Hoofddrop")[0] == "Hoofddrop"


def test_an_index_of_an_empty_database_is_not_kept(
        new_database_url: Callable[[], str]) -> None:
    engine = make_engine(new_database_url())
    ensure_schema(engine)
    try:
        with Session(engine) as session:
            assert search_places(session, "3511") == []
            assert search_places(session, "Houten") == []
            assert place_index(session) is not place_index(session)
    finally:
        engine.dispose()


def test_a_keystroke_costs_well_under_a_few_milliseconds(db: Session) -> None:
    place_index(db)
    typed = ["u", "ut", "utr", "utre", "h", "ho", "hou", "a", "am", "s gr", "fryslan", "zwo",
             "3", "35", "351", "3511", "3511 AB", "52.0907, 5.1214", "den haag"]
    times = []
    for _round in range(5):
        for query in typed:
            started = time.perf_counter()
            search_places(db, query)
            times.append(time.perf_counter() - started)
    assert statistics.median(times) < 0.003  # typically 0.4 ms


def test_typed_point_keeps_whether_letters_said_the_order() -> None:
    assert parse_coordinates("52.1, 5.1") == TypedPoint(52.1, 5.1, lettered=False)
    assert parse_coordinates("N52.1 E5.1") == TypedPoint(52.1, 5.1, lettered=True)
