"""Load the Dutch reference data (meldkamers, safety regions, municipalities, PC4) idempotently."""

from __future__ import annotations

import csv
import json
import re
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import shapely
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from core.db import changed_rows
from core.errors import ConfigError, DataError, PhoneNumberError
from core.models import (
    Base,
    Meldkamer,
    Municipality,
    ParticipantLocation,
    Postcode,
    SafetyRegion,
)
from core.phone import normalize

FILES = {
    "meldkamers": "meldkamers.csv",
    "safety_regions": "safety_regions.csv",
    "municipalities": "municipalities.csv",
    "boundaries": "municipalities.geojson",
    "postcodes": "pc4.csv",
}
#: The rules by which pc4.csv decided a postcode's municipality (core/data/README.md).
ASSIGNMENTS = {"cbs-pc4+geonames", "cbs-pc4+geonames-point", "geonames+certegis",
               "geonames+inside", "place+vicinity", "vicinity"}
#: Generous box around the Netherlands: catches swapped or garbled coordinates.
LAT_RANGE = (50.6, 53.7)
LON_RANGE = (3.2, 7.3)
#: Columns that reference data from before December 2026 lacks.
NEW_COLUMNS = {"inhabitants"}
OLD_DATA_HINT = ("reference data from before December 2026 (no population figures, "
                 "postcodes placed by the old geocoder): use the files shipped in core/data")

Progress = Callable[[int], None]
T = TypeVar("T")


@dataclass
class LoadReport:
    """What a load did, per table, and the integrity counts it checked afterwards."""

    inserted: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)
    removed: Counter[str] = field(default_factory=Counter)
    #: Participant locations that followed a corrected postcode (see `_relocate`).
    relocated: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def rows_changed(self) -> int:
        """Reference rows inserted, updated or removed."""
        return sum((self.inserted + self.updated + self.removed).values())

    @property
    def changed(self) -> bool:
        return bool(self.rows_changed or self.relocated)


@dataclass(frozen=True)
class MeldkamerContact:
    """Configured routing target of a meldkamer: not public data, so configuration."""

    phone: str
    sip_uri: str
    fallback: str | None


def count_rows(data_dir: Path) -> int:
    """Data rows across the CSV files, for sizing a progress bar."""
    total = 0
    for key in ("meldkamers", "safety_regions", "municipalities", "postcodes"):
        path = data_dir / FILES[key]
        try:
            with path.open("rb") as handle:
                total += max(sum(1 for _ in handle) - 1, 0)
        except OSError:
            pass  # reported with its reason when the load reaches the file
    return total


def read_csv(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a UTF-8 CSV with (line number, row); any problem is a DataError naming the line."""
    try:
        handle = path.open(encoding="utf-8", newline="")
    except FileNotFoundError:
        raise DataError(path, None, "file not found") from None
    except OSError as exc:
        raise DataError(path, None, f"cannot read: {exc.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        try:
            header = tuple(reader.fieldnames or ())
            missing = [c for c in columns if c not in header]
            if missing:
                hint = f": {OLD_DATA_HINT}" if NEW_COLUMNS & set(missing) else ""
                raise DataError(path, 1, f"missing column(s) {', '.join(missing)}{hint}")
            for row in reader:
                line = reader.line_num
                if None in row or any(row.get(c) is None for c in columns):
                    raise DataError(path, line, f"expected {len(header)} fields")
                yield line, {k: v.strip() for k, v in row.items()}
        except UnicodeDecodeError:
            raise DataError(path, reader.line_num + 1, "not valid UTF-8") from None
        except csv.Error as exc:
            raise DataError(path, reader.line_num, f"malformed CSV: {exc}") from None


def _match(value: str, pattern: str, what: str, path: Path, line: int) -> str:
    if not re.fullmatch(pattern, value):
        raise DataError(path, line, f"{what} {value!r} is malformed")
    return value


def _new_key(rows: dict[str, Any], value: str, pattern: str, what: str, path: Path,
             line: int) -> str:
    key = _match(value, pattern, what, path, line)
    if key in rows:
        raise DataError(path, line, f"{what} {key} appears twice")
    return key


def _lookup(objects: dict[str, T], value: str, what: str, path: Path, line: int) -> T:
    found = objects.get(value)
    if found is None:
        raise DataError(path, line, f"unknown {what} {value!r}")
    return found


def _coordinate(value: str, bounds: tuple[float, float], what: str, path: Path, line: int) -> float:
    try:
        number = float(value)
    except ValueError:
        raise DataError(path, line, f"{what} {value!r} is not a number") from None
    if not bounds[0] <= number <= bounds[1]:
        raise DataError(path, line, f"{what} {number} lies outside {bounds[0]}..{bounds[1]}")
    return number


def _count(value: str, what: str, path: Path, line: int) -> int:
    if not re.fullmatch(r"\d{1,9}", value):
        raise DataError(path, line, f"{what} {value!r} is not a whole number of 0 or more")
    return int(value)


def _inside(shapes: dict[str, BaseGeometry], code: str, lat: float, lon: float, what: str,
            path: Path, line: int) -> None:
    """Routing places a point by the municipality boundary, so a row's point must lie in its
    own municipality; one that does not would route callers to the wrong meldkamer."""
    if not shapes[code].contains(Point(lon, lat)):
        raise DataError(path, line, f"{what} ({lat}, {lon}) lies outside the boundary of "
                                    f"{code} in {FILES['boundaries']}")


def _text(value: str, what: str, path: Path, line: int) -> str:
    if not value:
        raise DataError(path, line, f"{what} is empty")
    return value


def _read_meldkamer_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: meldkamer configuration not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load_meldkamer_config(path: Path, codes: set[str] | None = None) -> dict[str, MeldkamerContact]:
    """Read the meldkamer numbers and SIP URIs; every meldkamer must have both."""
    document = _read_meldkamer_toml(path)
    sections = document.get("meldkamer")
    if not isinstance(sections, dict):
        raise ConfigError(f"{path}: no [meldkamer.CODE] sections")
    contacts: dict[str, MeldkamerContact] = {}
    for code, entry in sections.items():
        where = f"{path}: [meldkamer.{code}]"
        if codes is not None and code not in codes:
            raise ConfigError(f"{where}: {code!r} is not a meldkamer in the reference data")
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a table")
        try:
            phone = normalize(str(entry.get("phone", "")))
        except PhoneNumberError as exc:
            raise ConfigError(f"{where}: phone: {exc}") from None
        sip_uri = str(entry.get("sip_uri", ""))
        if not re.fullmatch(r"sips?:[^@\s]+@[^@\s]+", sip_uri):
            raise ConfigError(f"{where}: sip_uri {sip_uri!r} is not a sip: URI")
        fallback = entry.get("fallback")
        if fallback is not None and (fallback == code or fallback not in sections):
            raise ConfigError(
                f"{where}: fallback {fallback!r} must be another configured meldkamer")
        contacts[code] = MeldkamerContact(phone, sip_uri, fallback)
    if codes is not None and (missing := sorted(codes - contacts.keys())):
        raise ConfigError(f"{path}: no number or SIP URI configured for {', '.join(missing)}; "
                          "every meldkamer needs both so that no caller hits a dead end")
    return contacts


def load_national_fallback(path: Path) -> str:
    """The meldkamer that takes a call when nothing about the caller says where they are.

    Read from the top-level `national_fallback` key of the meldkamer configuration; it must
    name one of the meldkamers configured there, so that such a caller always gets through.
    """
    document = _read_meldkamer_toml(path)
    code = document.get("national_fallback")
    if code is None:
        raise ConfigError(f"{path}: no national_fallback: name the meldkamer that takes calls "
                          "from callers whose location is unknown, e.g. national_fallback = \"MN\"")
    sections = document.get("meldkamer")
    if not isinstance(code, str) or not isinstance(sections, dict) or code not in sections:
        raise ConfigError(f"{path}: national_fallback {code!r} is not a configured meldkamer")
    return code


class _Upserter:
    """Insert new rows and update changed ones by natural key, counting each row once."""

    def __init__(self, session: Session, report: LoadReport) -> None:
        self.session = session
        self.report = report
        self.changed: set[int] = set()
        self.unchanged: set[int] = set()

    def apply(self, model: type[Base], key: str, rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
        table = model.__tablename__
        existing = {getattr(obj, key): obj for obj in self.session.scalars(select(model))}
        result = {}
        for natural_key, values in rows.items():
            obj = existing.get(natural_key)
            if obj is None:
                obj = model(**{key: natural_key}, **values)
                self.session.add(obj)
                self.report.inserted[table] += 1
                self.changed.add(id(obj))
            elif not self.update(obj, values):
                self.report.unchanged[table] += 1
                self.unchanged.add(id(obj))
            result[natural_key] = obj
        self.session.flush()
        return result

    def update(self, obj: Base, values: dict[str, Any]) -> bool:
        """Set VALUES on OBJ; True when anything changed. A row already counted as unchanged
        by `apply` moves to updated (the meldkamer fallbacks are set after their rows)."""
        if all(getattr(obj, name) == value for name, value in values.items()):
            return False
        for name, value in values.items():
            setattr(obj, name, value)
        if id(obj) not in self.changed:
            self.changed.add(id(obj))
            table = type(obj).__tablename__
            self.report.updated[table] += 1
            if id(obj) in self.unchanged:
                self.unchanged.discard(id(obj))
                self.report.unchanged[table] -= 1
        return True


def load_reference(session: Session, data_dir: Path, meldkamer_config: Path,
                   progress: Progress | None = None) -> LoadReport:
    """Load every reference file into SESSION (which the caller commits) and check integrity.

    Files are validated row by row; the first bad row raises DataError with its file and line,
    and since nothing is committed here the caller's rollback leaves the database untouched.
    """
    tick = progress or (lambda _n: None)
    report = LoadReport()
    upsert = _Upserter(session, report)

    meldkamer_rows = _read_meldkamers(data_dir / FILES["meldkamers"], tick)
    contacts = load_meldkamer_config(meldkamer_config, set(meldkamer_rows))
    for code, values in meldkamer_rows.items():
        values.update(phone=contacts[code].phone, sip_uri=contacts[code].sip_uri)
    meldkamers = upsert.apply(Meldkamer, "code", meldkamer_rows)
    for code, contact in contacts.items():
        fallback = meldkamers[contact.fallback].id if contact.fallback else None
        upsert.update(meldkamers[code], {"fallback_id": fallback})

    region_rows = _read_regions(data_dir / FILES["safety_regions"], meldkamers, tick)
    regions = upsert.apply(SafetyRegion, "code", region_rows)
    municipality_rows, shapes = _read_municipalities(data_dir, regions, tick)
    municipalities = upsert.apply(Municipality, "code", municipality_rows)
    postcode_rows = _read_postcodes(data_dir / FILES["postcodes"], municipalities, shapes, tick)
    placed_before = _postcode_places(session)
    upsert.apply(Postcode, "pc4", postcode_rows)
    if stale := sorted(placed_before.keys() - postcode_rows.keys()):
        session.execute(delete(Postcode).where(Postcode.pc4.in_(stale))
                        .execution_options(synchronize_session=False))
        report.removed["postcode"] = len(stale)
    report.relocated = _relocate(session, placed_before, _postcode_places(session))
    report.counts = integrity_counts(session)
    return report


Placement = tuple[float, float, int]


def _postcode_places(session: Session) -> dict[str, Placement]:
    rows = session.execute(select(Postcode.pc4, Postcode.lat, Postcode.lon,
                                  Postcode.municipality_id))
    return {pc4: (lat, lon, municipality_id) for pc4, lat, lon, municipality_id in rows}


def _relocate(session: Session, before: dict[str, Placement],
              after: dict[str, Placement]) -> int:
    """Participant locations follow a corrected postcode; returns how many changed.

    A location registered by postcode sits exactly on the postcode's old point, so it moves
    to the new point and municipality. A location registered by coordinates keeps its
    coordinates and takes the postcode's new municipality (its PC4 was the nearest one).
    """
    location = ParticipantLocation
    moved = 0
    for pc4, (lat, lon, municipality_id) in after.items():
        old = before.get(pc4)
        if old is None or old == (lat, lon, municipality_id):
            continue
        moved += changed_rows(session,
            update(location)
            .where(location.pc4 == pc4, location.lat == old[0], location.lon == old[1])
            .values(lat=lat, lon=lon, municipality_id=municipality_id)
            .execution_options(synchronize_session=False))
        moved += changed_rows(session,
            update(location)
            .where(location.pc4 == pc4, location.country == "NL",
                   location.municipality_id != municipality_id)
            .values(municipality_id=municipality_id)
            .execution_options(synchronize_session=False))
    return moved


def _read_meldkamers(path: Path, tick: Progress) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for line, row in read_csv(path, ("code", "name", "police_unit")):
        code = _new_key(rows, row["code"], r"[A-Z]{2,3}", "meldkamer code", path, line)
        rows[code] = {"name": _text(row["name"], "name", path, line),
                      "police_unit": _text(row["police_unit"], "police_unit", path, line)}
        tick(1)
    return rows


def _read_regions(path: Path, meldkamers: dict[str, Meldkamer],
                  tick: Progress) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for line, row in read_csv(path, ("code", "name", "meldkamer")):
        code = _new_key(rows, row["code"], r"VR\d{2}", "safety region code", path, line)
        meldkamer = _lookup(meldkamers, row["meldkamer"], "meldkamer code", path, line)
        rows[code] = {"name": _text(row["name"], "name", path, line),
                      "meldkamer_id": meldkamer.id}
        tick(1)
    return rows


def _read_boundaries(path: Path) -> dict[str, dict[str, Any]]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(path, None, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, None, f"cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise DataError(path, exc.lineno, f"not valid JSON: {exc.msg}") from None
    boundaries: dict[str, dict[str, Any]] = {}
    for index, feature in enumerate(document.get("features", []), start=1):
        code = (feature.get("properties") or {}).get("code")
        geometry = feature.get("geometry") or {}
        if not code or geometry.get("type") not in {"Polygon", "MultiPolygon"}:
            raise DataError(path, None, f"feature {index}: needs a code and a (Multi)Polygon")
        boundaries[code] = geometry
    return boundaries


def _read_municipalities(data_dir: Path, regions: dict[str, SafetyRegion], tick: Progress
                         ) -> tuple[dict[str, dict[str, Any]], dict[str, BaseGeometry]]:
    """Municipality rows, and their boundaries as shapes for checking the points against."""
    path = data_dir / FILES["municipalities"]
    boundaries = _read_boundaries(data_dir / FILES["boundaries"])
    rows: dict[str, dict[str, Any]] = {}
    shapes: dict[str, BaseGeometry] = {}
    columns = ("code", "name", "safety_region", "centroid_lat", "centroid_lon", "inhabitants")
    for line, row in read_csv(path, columns):
        code = _new_key(rows, row["code"], r"GM\d{4}", "municipality code", path, line)
        region = _lookup(regions, row["safety_region"], "safety region code", path, line)
        if code not in boundaries:
            raise DataError(path, line, f"{code} has no boundary in {FILES['boundaries']}")
        shapes[code] = shape(boundaries[code])
        shapely.prepare(shapes[code])
        lat = _coordinate(row["centroid_lat"], LAT_RANGE, "latitude", path, line)
        lon = _coordinate(row["centroid_lon"], LON_RANGE, "longitude", path, line)
        _inside(shapes, code, lat, lon, "point", path, line)
        rows[code] = {
            "name": _text(row["name"], "name", path, line),
            "safety_region_id": region.id,
            "centroid_lat": lat,
            "centroid_lon": lon,
            "population": _count(row["inhabitants"], "inhabitants", path, line),
            "boundary": boundaries[code],
        }
        tick(1)
    if stray := sorted(boundaries.keys() - rows.keys()):
        raise DataError(data_dir / FILES["boundaries"], None,
                        f"unknown municipality code(s) {', '.join(stray[:5])}")
    return rows, shapes


def _read_postcodes(path: Path, municipalities: dict[str, Municipality],
                    shapes: dict[str, BaseGeometry], tick: Progress) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    columns = ("pc4", "place", "lat", "lon", "municipality", "how", "inhabitants")
    for line, row in read_csv(path, columns):
        pc4 = _new_key(rows, row["pc4"], r"[1-9]\d{3}", "postcode", path, line)
        code = row["municipality"]
        municipality = _lookup(municipalities, code, "municipality code", path, line)
        if row["how"] not in ASSIGNMENTS:
            raise DataError(path, line, f"assignment {row['how']!r} is not one of "
                                        f"{', '.join(sorted(ASSIGNMENTS))}")
        lat = _coordinate(row["lat"], LAT_RANGE, "latitude", path, line)
        lon = _coordinate(row["lon"], LON_RANGE, "longitude", path, line)
        _inside(shapes, code, lat, lon, f"the point of {pc4}", path, line)
        rows[pc4] = {
            "place": _text(row["place"], "place", path, line),
            "lat": lat,
            "lon": lon,
            "municipality_id": municipality.id,
            "assignment": row["how"],
            "population": _count(row["inhabitants"], "inhabitants", path, line),
        }
        tick(1)
    return rows


def integrity_counts(session: Session) -> dict[str, int]:
    """Counted from the database: how many rows, and how many are fully linked."""
    linked_municipalities = session.scalar(
        select(func.count(Municipality.id))
        .join(SafetyRegion, Municipality.safety_region_id == SafetyRegion.id)
        .join(Meldkamer, SafetyRegion.meldkamer_id == Meldkamer.id))
    linked_postcodes = session.scalar(
        select(func.count(Postcode.pc4))
        .join(Municipality, Postcode.municipality_id == Municipality.id))
    routable = session.scalar(
        select(func.count(Meldkamer.id))
        .where(Meldkamer.phone.is_not(None), Meldkamer.sip_uri.is_not(None)))
    return {
        "meldkamers": session.scalar(select(func.count(Meldkamer.id))) or 0,
        "meldkamers_routable": routable or 0,
        "safety_regions": session.scalar(select(func.count(SafetyRegion.id))) or 0,
        "municipalities": session.scalar(select(func.count(Municipality.id))) or 0,
        "municipalities_with_meldkamer": linked_municipalities or 0,
        "postcodes": session.scalar(select(func.count(Postcode.pc4))) or 0,
        "postcodes_with_municipality": linked_postcodes or 0,
    }
