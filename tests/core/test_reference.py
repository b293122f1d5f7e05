import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.db import make_engine, session_factory, transaction
from core.errors import ConfigError, DataError
from core.models import Meldkamer, Municipality, Postcode, SafetyRegion
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
        "postcodes": 4766, "postcodes_with_municipality": 4766,
    }


def test_the_data_ships_with_its_sources() -> None:
    readme = (DEFAULT_DATA_DIR / "README.md").read_text()
    assert "## Sources" in readme and "EUPL-1.2" in readme


def test_a_second_load_changes_nothing(db: Session) -> None:
    report = load_reference(db, DEFAULT_DATA_DIR, MELDKAMER_CONFIG)
    assert not report.changed
    assert report.unchanged["postcode"] == 4766
    assert report.unchanged["municipality"] == 342


def test_a_changed_row_is_updated_in_place(db: Session, data_dir: Path) -> None:
    _replace_line(data_dir / "pc4.csv", 2, "1000,Amsterdam Centrum,52.37778,4.90559,GM0363,inside")
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
                               "postcode": 4766}
    assert sum(ticks) == 10 + 25 + 342 + 4766


@pytest.mark.parametrize(("file", "line", "text", "message"), [
    ("pc4.csv", 3, "1001,Amsterdam,52.37778,4.90559,GM9999,inside",
     r"pc4.csv:3: unknown municipality code 'GM9999'"),
    ("pc4.csv", 4, "10x2,Amsterdam,52.37778,4.90559,GM0363,inside",
     r"pc4.csv:4: postcode '10x2' is malformed"),
    ("pc4.csv", 5, "1003,Amsterdam,north,4.90559,GM0363,inside",
     r"pc4.csv:5: latitude 'north' is not a number"),
    ("pc4.csv", 6, "1004,Amsterdam,4.9,52.3,GM0363,inside",
     r"pc4.csv:6: latitude 4.9 lies outside"),
    ("pc4.csv", 3, "1000,Amsterdam,52.37778,4.90559,GM0363,inside",
     r"pc4.csv:3: postcode 1000 appears twice"),
    ("pc4.csv", 7, "1005,Amsterdam,52.37,4.90",
     r"pc4.csv:7: expected 6 fields"),
    ("municipalities.csv", 2, "GM0014,Groningen,VR99,53.20771,6.57503",
     r"municipalities.csv:2: unknown safety region code 'VR99'"),
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
    _replace_line(data_dir / "pc4.csv", 2, "1000,Elders,52.0,5.0,GM0344,inside")
    _replace_line(data_dir / "pc4.csv", 4000, "9999,Nergens,52.0,5.0,GM0000,inside")
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
