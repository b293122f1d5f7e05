"""What is built in memory from the reference data in the database (the municipality
boundaries' STRtree, the place-search index), kept per database and process, and built again
when the data changed: `burgernet load-reference` in another process is picked up without a
restart.

Whether it changed is checked at most every CHECK_EVERY seconds by hashing the rows the
indexes are built from (a tenth of a second on SQLite; boundaries by their length).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, Text, cast, func, select
from sqlalchemy.orm import Session

from core.models import Meldkamer, Municipality, Postcode, SafetyRegion

#: Seconds between checks whether the reference data in the database changed.
CHECK_EVERY = 30.0

T = TypeVar("T")


def engine_key(session: Session) -> str:
    """Which database SESSION is bound to, as a key for per-process caches."""
    return session.get_bind().engine.url.render_as_string(hide_password=True)


def municipality_query(*columns: Any) -> Select[Any]:
    """Each municipality with COLUMNS after its code, name, centroid, and its meldkamer's code
    and name, by code."""
    return (select(Municipality.code, Municipality.name, Municipality.centroid_lat,
                   Municipality.centroid_lon, *columns, Meldkamer.code, Meldkamer.name)
            .join(SafetyRegion, Municipality.safety_region_id == SafetyRegion.id)
            .join(Meldkamer, SafetyRegion.meldkamer_id == Meldkamer.id)
            .order_by(Municipality.code))


POSTCODE_ROWS = (select(Postcode.pc4, Postcode.place, Postcode.lat, Postcode.lon,
                        Municipality.code, Postcode.assignment)
                 .join(Municipality, Postcode.municipality_id == Municipality.id)
                 .order_by(Postcode.pc4))
_MUNICIPALITY_SHAPES = municipality_query(func.length(cast(Municipality.boundary, Text)))


def reference_fingerprint(session: Session) -> str:
    """A hash of every column the indexes are built from (boundaries by their length): equal
    fingerprints, equal indexes."""
    digest = hashlib.sha256()
    for statement in (POSTCODE_ROWS, _MUNICIPALITY_SHAPES):
        for row in session.execute(statement):
            digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


@dataclass
class _Kept(Generic[T]):
    value: T
    fingerprint: str
    checked: float


class ReferenceCache(Generic[T]):
    """BUILD's value per database, built on first use and again when a check (at most every
    CHECK_EVERY seconds) finds that the reference data changed. A value KEEP refuses (built
    before `load-reference`: nothing to keep) is built again on the next use."""

    def __init__(self, build: Callable[[Session], T], keep: Callable[[T], bool]) -> None:
        self._build, self._keep = build, keep
        self._kept: dict[str, _Kept[T]] = {}
        self._lock = threading.Lock()

    def get(self, session: Session, *, check_every: float = CHECK_EVERY,
            clock: Callable[[], float] = time.monotonic) -> T:
        key, now = engine_key(session), clock()
        kept = self._kept.get(key)
        if kept is not None and now - kept.checked < check_every:
            return kept.value
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None and now - kept.checked < check_every:
                return kept.value
            fingerprint = reference_fingerprint(session)
            if kept is not None and kept.fingerprint == fingerprint:
                kept.checked = now
                return kept.value
            value = self._build(session)
            if self._keep(value):
                self._kept[key] = _Kept(value, fingerprint, now)
            return value

    def clear(self) -> None:
        """Forget every value; the next use builds it again."""
        with self._lock:
            self._kept.clear()
