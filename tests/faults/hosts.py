"""Several "hosts" on loopback for the fault tests (issue 14.8): a PostgreSQL cluster of the
test's own that every host shares, the sends the shared rate limiter admitted, and the
busiest second of a series of moments."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from core.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def own_postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster (scripts/pg.sh, as scripts/test.sh starts the suite's),
    never the suite's shared one; its URL. Its directory is outside pytest's private tmp: as
    root, pg.sh hands it to the postgres user."""
    directory = Path(tempfile.mkdtemp(prefix="burgernet-pg."))
    port = free_port()
    try:
        subprocess.run([str(ROOT / "scripts" / "pg.sh"), "start", str(directory), str(port)],
                       check=True, timeout=120)
        yield f"postgresql+psycopg://burgernet@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([str(ROOT / "scripts" / "pg.sh"), "stop", str(directory)], timeout=60,
                       check=False)
        shutil.rmtree(directory, ignore_errors=True)


def busiest_second(moments: Iterable[float]) -> int:
    """The most MOMENTS (seconds) within any sliding second [t, t + 1)."""
    ordered = sorted(moments)
    busiest, start = 0, 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= 1.0:
            start += 1
        busiest = max(busiest, end - start + 1)
    return busiest


class Admissions(threading.Thread):
    """Every send the shared sliding-second windows (`outbound.throttle.SendWindow`) admitted,
    by delivery, with Redis's time of admission (as bench/dispatch.py's WindowWatch): the
    moment each request left for the carrier, as the limiter of every host saw it."""

    def __init__(self, connection: redis.Redis, keys: Iterable[str]) -> None:
        super().__init__(daemon=True)
        self.connection, self.keys = connection, list(keys)
        self.seen: dict[str, dict[int, float]] = {key: {} for key in self.keys}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):  # members stay a full second: none slips past
            for key in self.keys:
                for member, score in self.connection.zrange(key, 0, -1, withscores=True):
                    delivery = int(member.decode().split(":")[1])  # delivery:<id>:<ns>
                    self.seen[key].setdefault(delivery, score / 1_000_000)

    def __enter__(self) -> Admissions:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.join(5)
