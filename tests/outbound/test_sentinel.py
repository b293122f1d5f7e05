"""REDIS_SENTINELS at start: the worker refuses to start, naming the setting, when the
sentinels do not answer or do not know the primary, and runs its jobs through the primary
they name (tests/faults/test_sentinel_failover.py kills that primary)."""

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from rq import Queue
from rq.serializers import JSONSerializer

from core.cli import main
from core.redis_server import free_port
from core.settings import Settings
from outbound.reclaim import RedisWatch
from outbound.runtime import build_runtime, keepalive
from tests.faults.sentinels import MASTER, SentinelSet
from tests.integration.outbox import wait_for


@pytest.fixture(scope="module")
def sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSet]:
    with SentinelSet(tmp_path_factory.mktemp("sentinels"), password="s3cret") as started:
        yield started


def _worker(settings: Settings, **env: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["worker", "--burst"], env={
        "REDIS_URL": "", "DATABASE_URL": settings.database_url,
        "BURGERNET_HOME": str(settings.home), **env})
    return result.exit_code, result.output


def test_a_worker_will_not_start_when_no_sentinel_answers(settings: Settings) -> None:
    code, output = _worker(settings, REDIS_SENTINELS=f"127.0.0.1:{free_port()},[::1]:1")
    assert code == 1
    assert "REDIS_SENTINELS: no sentinel names a primary for REDIS_SENTINEL_MASTER=" \
        "'burgernet'" in output
    assert "[::1]:1 does not answer" in output


def test_a_worker_will_not_start_when_the_sentinels_know_no_such_primary(
        settings: Settings, sentinels: SentinelSet) -> None:
    code, output = _worker(settings, REDIS_SENTINELS=sentinels.addresses,
                           REDIS_SENTINEL_MASTER="elsewhere", REDIS_PASSWORD="s3cret")
    assert code == 1
    first = sentinels.addresses.split(",")[0]
    assert f"{first} monitors no primary named 'elsewhere'" in output


@pytest.mark.parametrize("password", ["", "wrong"])
def test_a_worker_will_not_start_when_the_primary_refuses_the_password(
        settings: Settings, sentinels: SentinelSet, password: str) -> None:
    code, output = _worker(settings, REDIS_SENTINELS=sentinels.addresses,
                           REDIS_PASSWORD=password)
    assert code == 1 and "Redis refused REDIS_PASSWORD (missing or wrong)" in output


def test_a_worker_will_not_start_with_redis_url_and_sentinels(settings: Settings) -> None:
    code, output = _worker(settings, REDIS_URL="redis://127.0.0.1:6379/0",
                           REDIS_SENTINELS="127.0.0.1:26379")
    assert code == 1 and "REDIS_URL and REDIS_SENTINELS are both set" in output


def test_the_worker_runs_jobs_through_the_primary_the_sentinels_name(
        settings: Settings, sentinels: SentinelSet, tmp_path: Path) -> None:
    host, port = sentinels.primary()
    primary = redis.Redis(host, port, password="s3cret")
    job = Queue("sms-urgent", connection=primary, serializer=JSONSerializer).enqueue(
        "operator.add", 2, 3)
    code, output = _worker(settings, REDIS_SENTINELS=sentinels.addresses,
                           REDIS_PASSWORD="s3cret")
    assert code == 0, output
    job.refresh()
    assert job.is_finished and job.return_value() == 5
    runtime = build_runtime(Settings.from_env({
        "BURGERNET_HOME": str(tmp_path), "REDIS_SENTINELS": sentinels.addresses,
        "REDIS_PASSWORD": "s3cret"}))
    assert runtime.connect_redis("a test").info("server")["tcp_port"] == port
    primary.close()


def test_the_watch_refills_the_queues_after_a_failover_without_an_error(
        settings: Settings, sentinels: SentinelSet, tmp_path: Path) -> None:
    """A failover asked of the sentinels (maintenance) breaks no connection of ours, but the
    new primary may lack the last jobs it replicated: the watch sees another Redis."""
    runtime = build_runtime(Settings.from_env({
        "BURGERNET_HOME": str(tmp_path), "DATABASE_URL": settings.database_url,
        "REDIS_SENTINELS": sentinels.addresses, "REDIS_PASSWORD": "s3cret"}))
    watch = RedisWatch()
    watch.check(runtime)  # the first look: nothing refilled yet, so it refills
    assert watch.check(runtime) is None
    old = sentinels.primary()
    sentinel = redis.Redis("127.0.0.1", sentinels.sentinels[0].port)
    assert sentinel.sentinel_failover(MASTER)
    sentinel.close()
    sentinels.wait_for_failover(old)
    demoted = redis.Redis(*old, password="s3cret")
    wait_for(lambda: demoted.info("replication")["role"] == "slave", 30,
             "the sentinels make the old primary a replica")
    demoted.close()
    # a refill at the first look or, if the pooled connection still reached the old primary
    # (which answers reads as a replica), at the next one
    assert [watch.check(runtime) for _ in range(2)] != [None, None], "no refill"
    assert runtime.redis_for("a test").info("server")["tcp_port"] != old[1]
    assert watch.check(runtime) is None


def test_the_watch_will_not_take_a_replica_for_the_primary(
        settings: Settings, sentinels: SentinelSet, tmp_path: Path) -> None:
    [replica] = [node for node in sentinels.nodes if node.port != sentinels.primary()[1]]
    runtime = build_runtime(Settings.from_env({
        "BURGERNET_HOME": str(tmp_path), "DATABASE_URL": settings.database_url,
        "REDIS_URL": f"redis://:s3cret@127.0.0.1:{replica.port}/0"}))
    watch = RedisWatch()
    assert watch.check(runtime) is None and watch.owed


def test_a_redis_whose_host_vanishes_is_given_up_on_not_waited_for(settings: Settings) -> None:
    """No reset comes from a host that vanished: the sockets carry keepalive probes and a
    limit on unanswered data, so a worker's wait and a /readyz give up within about 15 s
    instead of the kernel's many minutes. (Set on the socket; a vanished host cannot be
    made on loopback without a firewall.)"""
    runtime = build_runtime(settings)
    try:
        assert runtime.redis is not None and runtime.redis.ping()
        connection = runtime.redis.connection_pool.get_connection()
        try:
            sock = connection._sock
            assert sock is not None
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            for option, value in keepalive().items():
                assert sock.getsockopt(socket.IPPROTO_TCP, option) == value
            assert keepalive()[socket.TCP_USER_TIMEOUT] == 15_000
        finally:
            runtime.redis.connection_pool.release(connection)
    finally:
        runtime.close()
