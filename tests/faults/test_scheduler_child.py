"""A worker killed alone, its scheduler child left running, loses no job.

`burgernet worker` forks RQ's scheduler. Killing only the worker's own process (what the OOM
killer or `kill -9 PID` does) used to leave the child holding a copy of the worker's Redis
socket: Redis went on counting the dead worker's blocking pop as a reader and handed it the
next job, which nobody read. Now the child lets go of the sockets it inherits
(`outbound.worker.release_inherited_sockets`) and ends when its worker is gone.
"""

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from core.redis_server import EmbeddedRedis
from fakes.twilio import FakeTwilioServer
from outbound.queues import queue
from tests.faults.carrier import TRIALS, Count, fault_line
from tests.integration.outbox import start_worker, wait_for, worker_env


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _blocked_clients(connection: redis.Redis) -> int:
    return sum(1 for client in connection.client_list() if "b" in client["flags"])


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(TRIALS))
def test_a_worker_killed_alone_leaves_no_reader_behind_and_the_next_job_is_taken(
        tmp_path: Path, new_database_url: Callable[[], str], redis_server: EmbeddedRedis,
        redis_client: redis.Redis, trial: int) -> None:
    with FakeTwilioServer() as fake:
        env = worker_env(new_database_url(), redis_server, tmp_path, fake, "0")
        first = start_worker(env, "--name", "first", "--queue", "sms-urgent",
                             log=tmp_path / "first.log")
        second: subprocess.Popen[bytes] | None = None
        orphans: list[int] = []
        try:
            wait_for(lambda: bool(_children(first.pid)), 30, "the scheduler child forked")
            wait_for(lambda: _blocked_clients(redis_client) == 1, 30, "the worker waits")
            orphans = _children(first.pid)
            [scheduler] = orphans
            os.kill(first.pid, signal.SIGKILL)
            killed = time.monotonic()
            first.wait(10)
            wait_for(lambda: _blocked_clients(redis_client) == 0, 10,
                     "Redis lets go of the dead worker's pop")
            wait_for(lambda: not _running(scheduler), 10, "the scheduler ends with its worker")

            second = start_worker(env, "--name", "second", "--queue", "sms-urgent",
                                  log=tmp_path / "second.log")
            wait_for(lambda: _blocked_clients(redis_client) >= 1, 30, "the second worker waits")
            job = queue(redis_client, "sms-urgent").enqueue("outbound.jobs.send_batch", [])
            taken = wait_for(lambda: job.get_status(refresh=True) in {"finished", "failed"},
                             30, "the next job is taken by the live worker")
            fault_line("worker-killed-alone", trial, Count(1, 0, 0), taken - killed)
        finally:
            for process in (first, second):
                if process is not None and process.poll() is None:
                    process.kill()
                    process.wait(10)
            for pid in orphans:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
