import socket
from pathlib import Path

import pytest
import redis

from core.errors import ConfigError
from core.redis_server import EmbeddedRedis


def test_the_session_redis_is_a_real_server(redis_client: redis.Redis) -> None:
    assert redis_client.ping()
    assert redis_client.info("server")["redis_version"]


def test_an_embedded_redis_stops_with_its_block(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as server:
        assert redis.Redis.from_url(server.url).ping()
        port = server.port
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 1):
        pass


def test_a_missing_redis_server_says_how_to_get_one(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="redis-server is not installed"):
        EmbeddedRedis(tmp_path).start()


def test_a_picked_port_taken_by_another_redis_is_picked_again(tmp_path: Path) -> None:
    """Between picking a free port and binding it, another Redis may take it: its answer
    must not pass for ours."""
    with EmbeddedRedis(tmp_path / "first") as first:
        second = EmbeddedRedis(tmp_path / "second")
        second.port = first.port  # as if the port was taken right after we picked it
        with second:
            assert second.port != first.port
            pid = redis.Redis.from_url(second.url).info("server")["process_id"]
            assert second.process is not None and pid == second.process.pid
        assert redis.Redis.from_url(first.url).ping()  # the other one is left alone


def test_a_picked_port_taken_by_another_program_is_picked_again(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = EmbeddedRedis(tmp_path)
        server.port = taken.getsockname()[1]
        with server:
            assert server.port != taken.getsockname()[1]
            assert redis.Redis.from_url(server.url).ping()


def test_a_port_given_and_taken_is_an_error(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "first") as first:
        with pytest.raises(ConfigError, match=f"did not start on port {first.port}"):
            EmbeddedRedis(tmp_path / "second", port=first.port).start()
        assert redis.Redis.from_url(first.url).ping()
