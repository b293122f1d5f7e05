import csv
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from shapely.geometry import Point, shape
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.db import make_engine, session_factory, transaction
from core.errors import ConfigError, DataError
from core.models import (
    LocationKind,
    Meldkamer,
    Municipality,
    Participant,
    ParticipantLocation,
    ParticipantStatus,
    Postcode,
    SafetyRegion,
)
from core.participants import add_location_by_postcode
from core.reference import (
    integrity_counts,
    load_meldkamer_config,
    load_national_fallback,
    load_reference,
)
from core.schema import ensure_schema
from core.settings import DEFAULT_DATA_DIR
from tests.conftest import MELDKAMER_CONFIG


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A writable copy of the shipped reference data, to break on purpose."""
    target = tmp_path / "data"
    shutil.copytree(DEFAULT_DATA_DIR, target)
    return target


@pytest.fixture
def empty_sessions(new_database_url: Callable[[], str]):
    engine = make_engine(new_database_url())
    ensure_schema(engine)
    yield session_factory(engine)
    engine.dispose()


def _replace_line(path: Path, line: int, text: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[line - 1] = text + "\n"
    path.write_text("".join(lines), encoding="utf-8")


def test_the_shipped_data_is_complete(db: Session) -> None:
    assert integrity_counts(db) == {
        "meldkamers": 10, "meldkamers_routable": 10, "safety_regions": 25,
        "municipalities": 342, "municipalities_with_meldkamer": 342,
        "postcodes": 4799, "postcodes_with_municipality": 4799,
    }


def test_the_data_ships_with_its_sources() -> None:
    readme = (DEFAULT_DATA_DIR / "README.md").read_text()
    assert "## Sources" in readme and "EUPL-1.2" in readme


def test_a_second_load_changes_nothing(db: Session) -> None:
    report = load_reference(db, DEFAULT_DATA_DIR, MELDKAMER_CONFIG)
    assert not report.changed
    assert report.unchanged["postcode"] == 4799
    assert report.unchanged["municipality"] == 342


def test_a_changed_row_is_updated_in_place(db: Session, data_dir: Path) -> None:
    _replace_line(data_dir / "pc4.csv", 2,
                  "1000,Amsterdam Centrum,52.36562,4.8929,GM0363,place+vicinity,0")
    report = load_reference(db, data_dir, MELDKAMER_CONFIG)
    assert report.updated["postcode"] == 1
    assert report.inserted["postcode"] == 0
    assert db.get(Postcode, "1000").place == "Amsterdam Centrum"


def test_a_first_load_fills_an_empty_database(empty_sessions) -> None:
    ticks: list[int] = []
    with transaction(empty_sessions) as session:
        report = load_reference(session, DEFAULT_DATA_DIR, MELDKAMER_CONFIG,
                                progress=ticks.append)
    assert report.inserted == {"meldkamer": 10, "safety_region": 25, "municipality": 342,
                               "postcode": 4799}
    assert sum(ticks) == 10 + 25 + 342 + 4799


@pytest.mark.parametrize(("file", "line", "text", "message"), [
    ("pc4.csv", 3, "1001,Amsterdam,52.36562,4.8929,GM9999,place+vicinity,0",
     r"pc4.csv:3: unknown municipality code 'GM9999'"),
    ("pc4.csv", 4, "10x2,Amsterdam,52.36562,4.8929,GM0363,place+vicinity,0",
     r"pc4.csv:4: postcode '10x2' is malformed"),
    ("pc4.csv", 5, "1003,Amsterdam,north,4.8929,GM0363,place+vicinity,0",
     r"pc4.csv:5: latitude 'north' is not a number"),
    ("pc4.csv", 6, "1005,Amsterdam,4.8929,52.36562,GM0363,place+vicinity,0",
     r"pc4.csv:6: latitude 4.8929 lies outside"),
    ("pc4.csv", 3, "1000,Amsterdam,52.36562,4.8929,GM0363,place+vicinity,0",
     r"pc4.csv:3: postcode 1000 appears twice"),
    ("pc4.csv", 7, "1006,Amsterdam,52.37,4.90",
     r"pc4.csv:7: expected 7 fields"),
    # Utrecht's point under Amsterdam's code: a caller keying 1006 would reach the wrong place
    ("pc4.csv", 8, "1007,Amsterdam,52.0907,5.1214,GM0363,place+vicinity,0",
     r"pc4.csv:8: the point of 1007 \(52.0907, 5.1214\) lies outside the boundary of GM0363"),
    ("pc4.csv", 9, "1008,Amsterdam,52.36562,4.8929,GM0363,inside,0",
     r"pc4.csv:9: assignment 'inside' is not one of cbs-pc4\+geonames, "),
    ("pc4.csv", 10, "1009,Amsterdam,52.36562,4.8929,GM0363,place+vicinity,-3",
     r"pc4.csv:10: inhabitants '-3' is not a whole number"),
    ("municipalities.csv", 2, "GM0014,Groningen,VR99,53.20771,6.57503,233265",
     r"municipalities.csv:2: unknown safety region code 'VR99'"),
    ("municipalities.csv", 2, "GM0014,Groningen,VR01,53.20771,6.57503,veel",
     r"municipalities.csv:2: inhabitants 'veel' is not a whole number"),
    ("municipalities.csv", 2, "GM0014,Groningen,VR01,52.0907,5.1214,233265",
     r"municipalities.csv:2: point \(52.0907, 5.1214\) lies outside the boundary of GM0014"),
    ("safety_regions.csv", 3, "VR02,Fryslân,XX",
     r"safety_regions.csv:3: unknown meldkamer code 'XX'"),
    ("meldkamers.csv", 1, "code,naam,police_unit",
     r"meldkamers.csv:1: missing column\(s\) name"),
])
def test_a_bad_row_stops_the_load_naming_file_and_line(
        empty_sessions, data_dir: Path, file: str, line: int, text: str, message: str) -> None:
    _replace_line(data_dir / file, line, text)
    with pytest.raises(DataError, match=message), transaction(empty_sessions) as session:
        load_reference(session, data_dir, MELDKAMER_CONFIG)
    _assert_empty(empty_sessions)


def test_a_missing_file_is_named(empty_sessions, data_dir: Path) -> None:
    (data_dir / "pc4.csv").unlink()
    with pytest.raises(DataError, match=r"pc4.csv: file not found"), \
            transaction(empty_sessions) as session:
        load_reference(session, data_dir, MELDKAMER_CONFIG)
    _assert_empty(empty_sessions)


def test_an_unreadable_file_is_named(empty_sessions, data_dir: Path) -> None:
    (data_dir / "safety_regions.csv").unlink()
    (data_dir / "safety_regions.csv").mkdir()
    with pytest.raises(DataError, match=r"safety_regions.csv: cannot read"), \
            transaction(empty_sessions) as session:
        load_reference(session, data_dir, MELDKAMER_CONFIG)


def test_a_file_that_is_not_utf8_is_named(empty_sessions, data_dir: Path) -> None:
    path = data_dir / "municipalities.csv"
    path.write_bytes(path.read_bytes().replace("Súdwest".encode(), "Súdwest".encode("latin-1")))
    with pytest.raises(DataError, match=r"municipalities.csv:\d+: not valid UTF-8"), \
            transaction(empty_sessions) as session:
        load_reference(session, data_dir, MELDKAMER_CONFIG)


def test_a_failed_reload_leaves_the_loaded_data_as_it_was(sessions, data_dir: Path) -> None:
    _replace_line(data_dir / "pc4.csv", 2, "1000,Elders,52.0907,5.1214,GM0344,cbs-pc4+geonames,1")
    _replace_line(data_dir / "pc4.csv", 4000, "9999,Nergens,52.0,5.0,GM0000,vicinity,0")
    with pytest.raises(DataError), transaction(sessions) as session:
        load_reference(session, data_dir, MELDKAMER_CONFIG)
    with sessions() as session:
        assert session.get(Postcode, "1000").place == "Amsterdam"


def _config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "meldkamers.toml"
    path.write_text(body)
    return path


@pytest.mark.parametrize(("body", "message"), [
    ('[meldkamer.MN]\nphone = "12"\nsip_uri = "sip:a@b"', r"\[meldkamer.MN\]: phone: '12' is not"),
    ('[meldkamer.MN]\nphone = "+31690000103"\nsip_uri = "tel:1"', r"sip_uri 'tel:1' is not"),
    ('[meldkamer.MN]\nphone = "+31690000103"\nsip_uri = "sip:a@b"\nfallback = "MN"',
     r"fallback 'MN' must be another"),
    ('[meldkamer.XX]\nphone = "+31690000103"\nsip_uri = "sip:a@b"',
     r"'XX' is not a meldkamer in the reference data"),
    ('[meldkamer.MN]\nphone = "+31690000103"\nsip_uri = "sip:a@b"',
     r"no number or SIP URI configured for .*NN"),
    ("meldkamer = [", "not valid TOML"),
])
def test_a_bad_meldkamer_configuration_is_refused(tmp_path: Path, body: str, message: str) -> None:
    codes = {"NN", "ON", "MN", "NH", "AM", "DH", "RT", "ZWB", "OB", "LB"}
    with pytest.raises(ConfigError, match=message):
        load_meldkamer_config(_config(tmp_path, body), codes)


def test_the_shipped_configuration_names_a_national_fallback() -> None:
    assert load_national_fallback(MELDKAMER_CONFIG) == "MN"


@pytest.mark.parametrize(("body", "message"), [
    ('[meldkamer.MN]\nphone = "+31690000103"\nsip_uri = "sip:a@b"', r"no national_fallback"),
    ('national_fallback = "XX"\n[meldkamer.MN]\nphone = "+31690000103"\nsip_uri = "sip:a@b"',
     r"national_fallback 'XX' is not a configured meldkamer"),
    ('national_fallback = 3\n[meldkamer.MN]\nphone = "+31690000103"\nsip_uri = "sip:a@b"',
     r"national_fallback 3 is not a configured meldkamer"),
])
def test_a_missing_or_unknown_national_fallback_is_refused(tmp_path: Path, body: str,
                                                           message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_national_fallback(_config(tmp_path, body))


def _assert_empty(sessions) -> None:
    with sessions() as session:
        for model in (Meldkamer, SafetyRegion, Municipality):
            assert session.scalar(select(func.count()).select_from(model)) == 0
        assert session.scalar(select(func.count()).select_from(Postcode)) == 0


def _drop_column(path: Path, column: str) -> None:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    fields = [name for name in rows[0] if name != column]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.parametrize("file", ["pc4.csv", "municipalities.csv"])
def test_an_old_data_folder_without_population_is_refused(empty_sessions, data_dir: Path,
                                                          file: str) -> None:
    _drop_column(data_dir / file, "inhabitants")
    with pytest.raises(DataError, match=rf"{file}:1: missing column\(s\) inhabitants: reference "
                                        "data from before December 2026"), \
            transaction(empty_sessions) as session:
        load_reference(session, data_dir, MELDKAMER_CONFIG)
    _assert_empty(empty_sessions)


def _shipped_postcodes() -> dict[str, dict[str, str]]:
    with (DEFAULT_DATA_DIR / "pc4.csv").open(encoding="utf-8", newline="") as handle:
        return {row["pc4"]: row for row in csv.DictReader(handle)}


def test_the_loaded_postcodes_are_the_shipped_file(db: Session) -> None:
    loaded = {
        row.pc4: {"pc4": row.pc4, "place": row.place, "lat": repr(row.lat),
                  "lon": repr(row.lon), "municipality": row.code, "how": row.assignment,
                  "inhabitants": str(row.population)}
        for row in db.execute(select(Postcode.pc4, Postcode.place, Postcode.lat, Postcode.lon,
                                     Municipality.code, Postcode.assignment,
                                     Postcode.population)
                              .join(Municipality, Postcode.municipality_id == Municipality.id))}
    shipped = {pc4: {**row, "lat": repr(float(row["lat"])), "lon": repr(float(row["lon"]))}
               for pc4, row in _shipped_postcodes().items()}
    assert loaded == shipped


def test_every_postcode_point_lies_inside_its_municipality(db: Session) -> None:
    """Checked with shapely on the boundaries as loaded, apart from the loader's own check."""
    boundaries = {code: shape(boundary) for code, boundary in
                  db.execute(select(Municipality.code, Municipality.boundary))}
    outside = [(pc4, code) for pc4, lat, lon, code in db.execute(
                   select(Postcode.pc4, Postcode.lat, Postcode.lon, Municipality.code)
                   .join(Municipality, Postcode.municipality_id == Municipality.id))
               if not boundaries[code].contains(Point(lon, lat))]
    assert outside == []
    assert len(boundaries) == 342


def test_a_municipality_counts_the_inhabitants_of_its_postcodes(db: Session) -> None:
    sums = dict(db.execute(select(Municipality.code, func.sum(Postcode.population))
                           .join(Postcode, Postcode.municipality_id == Municipality.id)
                           .group_by(Municipality.code)).all())
    populations = dict(db.execute(select(Municipality.code, Municipality.population)).all())
    assert populations == {code: sums.get(code, 0) for code in populations}
    assert populations["GM0014"] == 233_265  # Groningen, CBS 1 January 2021
    assert sum(populations.values()) == 17_472_870


def test_a_second_load_on_an_old_database_corrects_the_postcodes_and_who_lives_there(
        db: Session) -> None:
    """The database as the reference data of 2023 left it: 9999 Stitswerd on a point in
    Dalfsen (Oost-Nederland), no population figures."""
    dalfsen = db.scalar(select(Municipality).where(Municipality.code == "GM0148"))
    stitswerd = db.get(Postcode, "9999")
    stitswerd.lat, stitswerd.lon, stitswerd.municipality = 52.51932, 6.19034, dalfsen
    stitswerd.assignment, stitswerd.population = "inside", 0
    db.execute(update(Municipality).values(population=None))
    by_postcode = Participant(phone="+31690001001", status=ParticipantStatus.VERIFIED)
    by_point = Participant(phone="+31690001002", status=ParticipantStatus.VERIFIED)
    db.add_all([by_postcode, by_point])
    db.flush()
    add_location_by_postcode(db, by_postcode, LocationKind.HOME, "9999")
    db.add(ParticipantLocation(participant_id=by_point.id, kind=LocationKind.WORK,
                               lat=52.5201, lon=6.1911, pc4="9999",
                               municipality_id=dalfsen.id))
    db.flush()

    report = load_reference(db, DEFAULT_DATA_DIR, MELDKAMER_CONFIG)

    assert report.updated["postcode"] == 1 and report.updated["municipality"] == 342
    assert report.rows_changed == 343 and report.relocated == 2
    eemsdelta = db.scalar(select(Municipality.id).where(Municipality.code == "GM1966"))
    db.expire_all()
    home, work = (db.scalar(select(ParticipantLocation).where(
        ParticipantLocation.participant_id == who.id)) for who in (by_postcode, by_point))
    assert (home.lat, home.lon, home.municipality_id) == (53.3603, 6.5982, eemsdelta)
    assert (work.lat, work.lon, work.municipality_id) == (52.5201, 6.1911, eemsdelta)
    assert not load_reference(db, DEFAULT_DATA_DIR, MELDKAMER_CONFIG).changed
