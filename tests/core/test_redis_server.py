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
