"""`burgernet worker` as a process of its own (a real BatchWorker, with its signal handlers),
registered in RQ's worker registry before the test goes on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from rq import SimpleWorker

from tests.conftest import MELDKAMER_CONFIG


def worker_names(connection: redis.Redis) -> set[str]:
    return {worker.name for worker in SimpleWorker.all(connection=connection)}


def _working(connection: redis.Redis, name: str) -> bool:
    """Registered and past its start (its signal handlers installed: RQ registers a worker
    before it installs them, and a SIGTERM in between would kill it unannounced)."""
    return any(worker.name == name and worker.get_state() in ("idle", "busy")
               for worker in SimpleWorker.all(connection=connection))


def kill_worker(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker and its RQ scheduler (a forked child), as a host that dies.

    Killing the worker alone leaves the scheduler running with a copy of the worker's Redis
    socket, on which the dead worker's BLPOP stays registered: Redis then hands the next job
    of those queues to a client nobody reads."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


@contextmanager
def worker_process(home: Path, database_url: str, redis_url: str, name: str,
                   **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """`burgernet worker --name NAME`, once RQ lists it at work; stopped (SIGTERM) afterwards
    unless the test ended it itself."""
    log = home / f"worker-{name}.log"
    output = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "worker", "--name", name],
        env={**os.environ, "BURGERNET_HOME": str(home), "DATABASE_URL": database_url,
             "REDIS_URL": redis_url, "MELDKAMER_CONFIG": str(MELDKAMER_CONFIG),
             "SECRET_KEY": "test-secret-key", "TTS": "espeak", **env},
        stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    connection = redis.Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + 60
        while not _working(connection, name):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                kill_worker(process)
        connection.close()
        output.close()
