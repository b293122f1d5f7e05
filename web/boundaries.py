"""The console map's offline base layer: municipality boundaries from the database, simplified
to a size a browser loads at once (230 kB, 60 kB gzipped), built once per process."""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.errors import GEOSException
from shapely.geometry import mapping, shape
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Municipality

#: Coverage simplification in degrees (Visvalingam-Whyatt, ~350-550 m): neighbours keep one
#: shared border, so simplifying opens no gaps between municipalities.
TOLERANCE = 0.005
#: Four decimals of a degree is ~10 m, finer than the simplification.
DECIMALS = 4


@dataclass(frozen=True)
class BaseLayer:
    """The GeoJSON as bytes, gzipped too, and its ETag."""

    content: bytes
    gzipped: bytes
    etag: str


def build_base_layer(session: Session) -> BaseLayer:
    """A FeatureCollection of every municipality with a boundary: name, code, label point."""
    rows = session.execute(
        select(Municipality.code, Municipality.name, Municipality.centroid_lat,
               Municipality.centroid_lon, Municipality.boundary)
        .where(Municipality.boundary.is_not(None)).order_by(Municipality.code)).all()
    geometries = _simplify([shape(row.boundary) for row in rows])
    features = [{"type": "Feature",
                 "properties": {"code": row.code, "name": row.name,
                                "label": [round(row.centroid_lat, DECIMALS),
                                          round(row.centroid_lon, DECIMALS)]},
                 "geometry": _rounded(mapping(geometry))}
                for row, geometry in zip(rows, geometries, strict=True)
                if not geometry.is_empty]
    content = json.dumps({"type": "FeatureCollection", "features": features},
                         separators=(",", ":"), ensure_ascii=False).encode()
    return BaseLayer(content, gzip.compress(content, mtime=0),
                     hashlib.sha256(content).hexdigest()[:32])


def _simplify(geometries: list[Any]) -> list[Any]:
    try:
        return list(shapely.coverage_simplify(geometries, TOLERANCE))
    except GEOSException:  # not a clean coverage: each on its own
        return list(shapely.simplify(geometries, TOLERANCE / 2, preserve_topology=True))


def _rounded(geometry: Any) -> dict[str, Any]:
    def walk(value: Any) -> Any:
        if isinstance(value[0], int | float):
            return [round(value[0], DECIMALS), round(value[1], DECIMALS)]
        return [walk(item) for item in value]

    return {"type": geometry["type"], "coordinates": walk(geometry["coordinates"])}
