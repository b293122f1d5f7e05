"""Redis without a single point of failure, on loopback: a primary, a replica and three
sentinels (real redis-server processes, the sentinels in `--sentinel` mode) in a directory
of their own, for the fault tests of issue 14 (points 5 and 8).

The commands and the sentinel configuration are made here, by `data_node_command` and
`sentinel_config`; docker-compose.yml runs the same ones (tests/faults/test_two_hosts.py
compares them), with its own host names and the standard ports.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import make_engine
from core.models import Channel, Delivery
from core.redis_server import free_port
from fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilioServer
from tests.conftest import MELDKAMER_CONFIG

#: The name under which the sentinels monitor the primary (REDIS_SENTINEL_MASTER's default).
MASTER = "burgernet"
#: Sentinels that must agree the primary is down before one of them fails over.
QUORUM = 2
#: How long a silent primary is taken for down (Sentinel's default: 30 s), and how long a
#: failover may take before another sentinel tries (default: 3 minutes): short, so that a
#: failover is over in a few seconds. Two seconds of silence is long on a LAN and short for
#: people waiting for a search action; docker-compose.yml uses the same.
DOWN_AFTER_MS = 2000
FAILOVER_TIMEOUT_MS = 10000


def data_node_command(port: int, workdir: str, *, replica_of: tuple[str, int] | None = None,
                      password: str = "") -> list[str]:
    """A Redis primary (or replica of REPLICA_OF) with the persistence the README recommends:
    an append-only file synced every second. With PASSWORD, it asks for it and gives it to
    the primary it replicates (any node may become a replica after a failover)."""
    command = ["redis-server", "--port", str(port), "--dir", workdir,
               "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
    if password:
        command += ["--requirepass", password, "--masterauth", password]
    if replica_of is not None:
        command += ["--replicaof", replica_of[0], str(replica_of[1])]
    return command


def sentinel_config(port: int, primary: tuple[str, int], *, password: str = "",
                    down_after_ms: int = DOWN_AFTER_MS,
                    failover_timeout_ms: int = FAILOVER_TIMEOUT_MS) -> list[str]:
    """The lines of a sentinel's configuration file (Sentinel rewrites the file as it
    learns, so each sentinel needs a writable copy)."""
    lines = [f"port {port}",
             # reached from other hosts: the sentinels hold no data, and ask no password
             "protected-mode no",
             # the primary by name (a service name under docker compose)
             "sentinel resolve-hostnames yes",
             f"sentinel monitor {MASTER} {primary[0]} {primary[1]} {QUORUM}",
             f"sentinel down-after-milliseconds {MASTER} {down_after_ms}",
             f"sentinel failover-timeout {MASTER} {failover_timeout_ms}",
             f"sentinel parallel-syncs {MASTER} 1"]
    if password:
        lines.append(f"sentinel auth-pass {MASTER} {password}")
    return lines


def sentinel_command(config: str) -> list[str]:
    return ["redis-server", config, "--sentinel"]


@dataclass
class _Process:
    name: str
    port: int
    process: subprocess.Popen[bytes] | None = None


@dataclass
class SentinelSet:
    """A primary, a replica and three sentinels on free loopback ports in WORKDIR; `start`
    returns once every sentinel knows the replica and the two other sentinels (a failover
    needs both)."""

    workdir: Path
    password: str = ""
    down_after_ms: int = DOWN_AFTER_MS
    failover_timeout_ms: int = FAILOVER_TIMEOUT_MS
    nodes: list[_Process] = field(default_factory=list)
    sentinels: list[_Process] = field(default_factory=list)

    @property
    def addresses(self) -> str:
        """REDIS_SENTINELS for these sentinels."""
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def start(self, timeout: float = 30.0) -> SentinelSet:
        primary = self._node("primary", None)
        self._node("replica", ("127.0.0.1", primary.port))
        for n in range(3):
            self._sentinel(f"sentinel-{n}", ("127.0.0.1", primary.port))
        self.wait_until_ready(("127.0.0.1", primary.port), timeout)
        return self

    def _node(self, name: str, replica_of: tuple[str, int] | None) -> _Process:
        directory = self.workdir / name
        directory.mkdir(parents=True, exist_ok=True)
        node = _Process(name, free_port())
        node.process = _launch(directory, data_node_command(
            node.port, str(directory), replica_of=replica_of, password=self.password)
            + ["--bind", "127.0.0.1"])
        self.nodes.append(node)
        _until_answers(node, self.password)
        return node

    def _sentinel(self, name: str, primary: tuple[str, int]) -> _Process:
        directory = self.workdir / name
        directory.mkdir(parents=True, exist_ok=True)
        sentinel = _Process(name, free_port())
        config = directory / "sentinel.conf"
        config.write_text("\n".join([
            *sentinel_config(sentinel.port, primary, password=self.password,
                             down_after_ms=self.down_after_ms,
                             failover_timeout_ms=self.failover_timeout_ms),
            "bind 127.0.0.1", f"dir {directory}"]) + "\n")
        sentinel.process = _launch(directory, sentinel_command(str(config)))
        self.sentinels.append(sentinel)
        _until_answers(sentinel, "")
        return sentinel

    def wait_until_ready(self, primary: tuple[str, int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(self._knows_all(s, primary) for s in self.sentinels):
            if time.monotonic() > deadline:
                raise AssertionError(f"the sentinels did not find each other and the replica "
                                     f"within {timeout} s; see {self.workdir}/*/redis.log")
            time.sleep(0.2)

    @staticmethod
    def _knows_all(sentinel: _Process, primary: tuple[str, int]) -> bool:
        client = _client(sentinel.port, "")
        try:
            state = client.sentinel_master(MASTER)
            replicas = client.sentinel_slaves(MASTER)
        except redis.RedisError:
            return False
        finally:
            client.close()
        return ((state["ip"], int(state["port"])) == primary
                and int(state["num-other-sentinels"]) == 2
                and any(not r["is_sdown"] and r.get("master-link-status") == "ok"
                        for r in replicas))

    def primary(self) -> tuple[str, int]:
        """Where the sentinels say the primary is (the first that answers)."""
        for sentinel in self.sentinels:
            client = _client(sentinel.port, "")
            try:
                host, port = client.sentinel_get_master_addr_by_name(MASTER)
                return str(host), int(port)
            except (redis.RedisError, TypeError):
                continue
            finally:
                client.close()
        raise AssertionError("no sentinel answers")

    def kill_primary(self) -> tuple[str, int]:
        """SIGKILL the node that is the primary now, as a crash; its address."""
        address = self.primary()
        [node] = [n for n in self.nodes if n.port == address[1]]
        assert node.process is not None
        node.process.kill()
        node.process.wait()
        node.process = None
        return address

    def wait_for_failover(self, old: tuple[str, int], timeout: float = 60.0) -> float:
        """Until the sentinels name a new primary that answers as one; the moment
        (time.monotonic)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                address = self.primary()
            except AssertionError:
                address = old
            if address != old and _role(address[1], self.password) == "master":
                return time.monotonic()
            if time.monotonic() > deadline:
                raise AssertionError(f"no failover within {timeout} s")
            time.sleep(0.1)

    def stop(self) -> None:
        for item in [*self.sentinels, *self.nodes]:
            if item.process is not None and item.process.poll() is None:
                item.process.terminate()
                try:
                    item.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    item.process.kill()
                    item.process.wait()
            item.process = None

    def __enter__(self) -> SentinelSet:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _launch(directory: Path, command: Sequence[str]) -> subprocess.Popen[bytes]:
    binary = shutil.which(command[0])
    assert binary is not None, f"{command[0]} is not installed (scripts/setup.sh test)"
    with (directory / "redis.log").open("ab") as log:
        return subprocess.Popen([binary, *command[1:]], stdout=log, stderr=subprocess.STDOUT)


def _client(port: int, password: str) -> redis.Redis:
    return redis.Redis("127.0.0.1", port, password=password or None, socket_timeout=1,
                       socket_connect_timeout=1, decode_responses=True)


def _role(port: int, password: str) -> str | None:
    client = _client(port, password)
    try:
        return str(client.info("replication")["role"])
    except redis.RedisError:
        return None
    finally:
        client.close()


def _until_answers(item: _Process, password: str, timeout: float = 10.0) -> None:
    """Until the process answers on its port as itself (another program may have taken the
    free port first: then the test fails here, loudly, instead of talking to a stranger)."""
    assert item.process is not None
    client = _client(item.port, password)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                pid = int(client.info("server")["process_id"])
            except redis.RedisError:
                pid = None
            if pid is not None:
                assert pid == item.process.pid, f"another program answers on {item.port}"
                return
            assert item.process.poll() is None, f"{item.name} exited; see its redis.log"
            assert time.monotonic() < deadline, f"{item.name} did not start"
            time.sleep(0.05)
    finally:
        client.close()


def sentinel_env(url: str, redis_set: SentinelSet, home: Path, fake: FakeTwilioServer,
                 rate: str) -> dict[str, str]:
    """What `burgernet worker` needs to send through the fake at RATE per second, with
    Redis found through the sentinels alone (as tests.integration.outbox.worker_env else)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("REDIS_")}
    return {**env, "DATABASE_URL": url, "REDIS_SENTINELS": redis_set.addresses,
            "REDIS_SENTINEL_MASTER": MASTER, "REDIS_PASSWORD": redis_set.password,
            "BURGERNET_HOME": str(home), "MELDKAMER_CONFIG": str(MELDKAMER_CONFIG),
            "SMS_PROVIDER": "twilio", "VOICE_PROVIDER": "twilio",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM": "+31690000999", "TWILIO_BASE_URL": fake.url,
            "SMS_RATE": rate, "VOICE_RATE": rate, "PUBLIC_URL": "http://127.0.0.1:9"}


def lost_and_duplicated(url: str, action_id: int, fake: FakeTwilioServer) -> tuple[int, int]:
    """SMS and calls of the action that never reached the carrier, and those that reached it
    more than once (counted as tests/integration/outbox.py does: by recipient and kind)."""
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            expected = len(session.scalars(select(Delivery.id).where(
                Delivery.action_id == action_id,
                Delivery.channel.in_([Channel.SMS, Channel.VOICE]))).all())
    finally:
        engine.dispose()
    counted = Counter((r.kind, r.to) for r in fake.fake.records)
    return expected - len(counted), sum(counted.values()) - len(counted)
