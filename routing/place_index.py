"""The in-memory index behind place search: every PC4 area, place name and municipality of the
reference data as a point with a radius and the municipality and meldkamer it lies in.

Built from plain rows (no database here), once per process; `routing.places` reads the rows,
keeps the index and answers queries from it.

- A **municipality** is the smallest circle that covers its boundary.
- A **PC4 area** is its centroid with a radius of the distance to the nearest other PC4
  centroid (between 1 and 2.5 km), since the data has no PC4 areas, only points.
- A **place** is one name over many PC4 areas: its PC4 points are grouped into clusters
  (points of one name within CLUSTER_M of each other belong together; villages of the same
  name in different corners of the country do not), each cluster one place, centred on the
  mean of its points, with a radius that covers all of its PC4 circles. A place named like
  the municipality it lies in is that municipality, so a name is suggested once.
- PC4 rows that have no area of their own (mostly PO-box ranges) carry the centre of their
  town as their point (`assignment` place+vicinity or vicinity, core/data/README.md): they
  count for no place and get no radius of their own, and a search for one goes to the middle
  of its place (or municipality) with a note saying so.
"""

from __future__ import annotations

import enum
import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
import shapely
from shapely.geometry import shape

from core.geo import gaussian_radius

#: PC4 centroids of one name closer than this (in a chain) are one place.
CLUSTER_M = 6_000.0
PC4_MIN_M = 1_000
PC4_MAX_M = 2_500
#: For a PC4 area or place whose centroid is unknown (a PO-box range of a place not found).
PC4_DEFAULT_M = 1_500
#: Well-known names of two municipalities whose official (CBS) name is another.
ALIASES = {"Den Haag": "'s-Gravenhage", "Den Bosch": "'s-Hertogenbosch"}
#: How pc4.csv decided the rows that have no area of their own, only their town's centre.
TOWN_CENTRE = frozenset({"place+vicinity", "vicinity"})


class PlaceKind(enum.StrEnum):
    POSTCODE = "postcode"
    PLACE = "place"
    MUNICIPALITY = "municipality"
    COORDINATES = "coordinates"


@dataclass(frozen=True)
class Note:
    """Something the user should know about a suggestion: a stable ID and its values."""

    id: str
    values: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Suggestion:
    """One answer to a place search: where to centre the map, how wide, and who answers there."""

    label: str
    kind: PlaceKind
    lat: float
    lon: float
    radius_m: int
    municipality_code: str
    municipality: str
    meldkamer_code: str
    meldkamer: str
    note: Note | None = None


class MunicipalityRow(NamedTuple):
    code: str
    name: str
    centroid_lat: float
    centroid_lon: float
    boundary: dict[str, Any] | None
    meldkamer_code: str
    meldkamer: str


class PostcodeRow(NamedTuple):
    pc4: str
    place: str
    lat: float
    lon: float
    municipality_code: str
    assignment: str


@dataclass(frozen=True)
class Entry:
    """A suggestion under a normalised name, with WEIGHT (its PC4 areas) for ranking."""

    key: str
    compact: str
    weight: int
    ident: str
    suggestion: Suggestion


def normalise(text: str) -> str:
    """Lower case without accents, punctuation or repeated spaces: "'s-Gravenhage" →
    "s gravenhage", "Súdwest-Fryslân" → "sudwest fryslan"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.sub(r"[\W_]+", " ", bare).split())


def _names_of(municipality: str) -> set[str]:
    """The names a place of the municipality itself goes by: "Laren (NH.)" → "laren nh" and
    "laren"."""
    return {normalise(municipality), normalise(re.sub(r"\s*\(.*?\)\s*$", "", municipality))}


def _scale(lat: float) -> tuple[float, float]:
    """Metres per degree of longitude and of latitude around LAT."""
    ky = math.radians(gaussian_radius(lat))
    return ky * math.cos(math.radians(lat)), ky


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Metres between two nearby points (equirectangular: exact enough within a province)."""
    kx, ky = _scale((lat1 + lat2) / 2)
    return math.hypot((lon2 - lon1) * kx, (lat2 - lat1) * ky)


def _round_up(metres: float, step: int = 100) -> int:
    return int(math.ceil(metres / step) * step)


class PlaceIndex:
    """Everything place search looks up: postcodes by PC4, and named entries to scan."""

    def __init__(self, municipalities: Iterable[MunicipalityRow],
                 postcodes: Iterable[PostcodeRow]) -> None:
        self.municipalities = {row.code: row for row in municipalities}
        self.meldkamers = {row.meldkamer_code: row.meldkamer
                           for row in self.municipalities.values()}
        rows = sorted(postcodes, key=lambda row: row.pc4)
        located = [row for row in rows if row.assignment not in TOWN_CENTRE]
        self.pc4_radius = _pc4_radii(located)
        circles = {code: _covering_circle(row) for code, row in self.municipalities.items()}
        places = _places(located, self.pc4_radius)
        self.postcodes = {row.pc4: self._postcode(row, places, circles) for row in rows}
        self.pc4s = sorted(self.postcodes)
        self.entries = self._named_entries(rows, places, circles)

    def _suggestion(self, label: str, kind: PlaceKind, lat: float, lon: float, radius_m: int,
                    code: str, note: Note | None = None) -> Suggestion:
        row = self.municipalities[code]
        return Suggestion(label, kind, lat, lon, radius_m, code, row.name, row.meldkamer_code,
                          row.meldkamer, note)

    def _postcode(self, row: PostcodeRow, places: dict[tuple[str, str], _Place],
                  circles: dict[str, tuple[float, float, int]]) -> Suggestion:
        label = f"{row.pc4} {row.place}"
        if row.assignment not in TOWN_CENTRE:
            return self._suggestion(label, PlaceKind.POSTCODE, row.lat, row.lon,
                                    self.pc4_radius[row.pc4], row.municipality_code)
        place = places.get((row.place, row.municipality_code))
        if place is not None:
            lat, lon, radius = place.lat, place.lon, place.radius_m
        else:
            lat, lon, radius = circles[row.municipality_code]
        return self._suggestion(label, PlaceKind.POSTCODE, lat, lon, radius,
                                row.municipality_code, Note("po_box", {"place": row.place}))

    def _named_entries(self, rows: list[PostcodeRow], places: dict[tuple[str, str], _Place],
                       circles: dict[str, tuple[float, float, int]]) -> list[Entry]:
        areas = Counter(row.municipality_code for row in rows)
        entries: dict[str, Entry] = {}
        for code, row in self.municipalities.items():
            lat, lon, radius = circles[code]
            suggestion = self._suggestion(row.name, PlaceKind.MUNICIPALITY, lat, lon, radius,
                                          code)
            entries[f"municipality:{code}"] = _entry(row.name, areas[code],
                                                     f"municipality:{code}", suggestion)
        names = Counter(name for name, _code in places)
        by_name = {row.name: code for code, row in self.municipalities.items()}
        for (name, code), place in sorted(places.items()):
            if normalise(name) in _names_of(self.municipalities[code].name):
                continue  # the municipality of the same name stands for it
            unique = names[name] == 1 and name not in by_name
            label = name if unique else f"{name} ({self.municipalities[code].name})"
            suggestion = self._suggestion(label, PlaceKind.PLACE, place.lat, place.lon,
                                          place.radius_m, code)
            ident = f"place:{name}:{code}"
            entries[ident] = _entry(label, place.weight, ident, suggestion)
        for alias, official in ALIASES.items():
            if official in by_name:
                target = entries[f"municipality:{by_name[official]}"]
                label = f"{official} ({alias})"
                entries[f"alias:{alias}"] = _entry(alias, target.weight, target.ident,
                                                   replace(target.suggestion, label=label))
        return list(entries.values())


def _entry(name: str, weight: int, ident: str, suggestion: Suggestion) -> Entry:
    key = normalise(name)
    return Entry(key, key.replace(" ", ""), weight, ident, suggestion)


def _pc4_radii(rows: list[PostcodeRow]) -> dict[str, int]:
    """Per PC4: the distance to the nearest other PC4 centroid, rounded up and bounded."""
    if len(rows) < 2:
        return {row.pc4: PC4_DEFAULT_M for row in rows}
    mid = float(np.mean([row.lat for row in rows]))
    kx, ky = _scale(mid)
    points = shapely.points([(row.lon * kx, row.lat * ky) for row in rows])
    tree = shapely.STRtree(points)
    (sources, _targets), distances = tree.query_nearest(points, exclusive=True,
                                                        return_distance=True, all_matches=False)
    nearest = dict(zip(sources.tolist(), distances.tolist(), strict=True))
    return {row.pc4: min(max(_round_up(nearest.get(i, PC4_DEFAULT_M)), PC4_MIN_M), PC4_MAX_M)
            for i, row in enumerate(rows)}


def _covering_circle(row: MunicipalityRow) -> tuple[float, float, int]:
    """Centre and radius (m) of the smallest circle around the municipality's boundary,
    measured in a plane in metres around its centroid."""
    if not row.boundary:
        return row.centroid_lat, row.centroid_lon, PC4_DEFAULT_M
    lat0, lon0 = row.centroid_lat, row.centroid_lon
    kx, ky = _scale(lat0)
    planar = shapely.transform(shape(row.boundary), lambda xy: (xy - (lon0, lat0)) * (kx, ky))
    centre = shapely.minimum_bounding_circle(planar).centroid
    radius = shapely.minimum_bounding_radius(planar)
    return lat0 + centre.y / ky, lon0 + centre.x / kx, _round_up(radius)


@dataclass(frozen=True)
class _Place:
    lat: float
    lon: float
    radius_m: int
    weight: int


def _places(rows: list[PostcodeRow], radii: dict[str, int]) -> dict[tuple[str, str], _Place]:
    """(name, municipality code) → place: each cluster of a name's PC4 centroids, in the
    municipality most of its PC4 areas lie in (the lowest code on a tie)."""
    by_name: dict[str, list[PostcodeRow]] = defaultdict(list)
    for row in rows:
        by_name[row.place].append(row)
    places: dict[tuple[str, str], _Place] = {}
    for name, members in by_name.items():
        for cluster in _clusters(members):
            counts = Counter(row.municipality_code for row in cluster)
            code = min(counts, key=lambda c: (-counts[c], c))
            place = _place(cluster, radii)
            known = places.get((name, code))
            if known is None or known.weight < place.weight:
                places[(name, code)] = place
    return places


def _place(cluster: list[PostcodeRow], radii: dict[str, int]) -> _Place:
    lat = sum(row.lat for row in cluster) / len(cluster)
    lon = sum(row.lon for row in cluster) / len(cluster)
    reach = max(distance_m(lat, lon, row.lat, row.lon) + radii[row.pc4] for row in cluster)
    return _Place(lat, lon, _round_up(reach), len(cluster))


def _clusters(rows: list[PostcodeRow]) -> list[list[PostcodeRow]]:
    """Single-linkage clusters: a point within CLUSTER_M of any point of a cluster joins it."""
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(rows):
        for j in range(i + 1, len(rows)):
            if distance_m(a.lat, a.lon, rows[j].lat, rows[j].lon) <= CLUSTER_M:
                parent[root(j)] = root(i)
    groups: dict[int, list[PostcodeRow]] = defaultdict(list)
    for i, row in enumerate(rows):
        groups[root(i)].append(row)
    return list(groups.values())
