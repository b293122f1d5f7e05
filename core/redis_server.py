"""A private redis-server on a free loopback port, for the demo and the tests."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis

from core.errors import ConfigError

#: Where `free_port` looks: the ports just below the kernel's usual ephemeral range.
PORTS_BELOW = 10_000


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, for a server about to bind.

    It is taken below the kernel's ephemeral range: every outgoing connection takes its local
    port from that range, and one that took the port between this check and the server's bind
    made the server fail ("Address already in use"), with many clients running side by
    side."""
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(max(1024, low - PORTS_BELOW), low)
        if _bindable(port):
            return port
    with socket.socket() as sock:  # the range is full: the kernel's pick
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class EmbeddedRedis:
    """Starts redis-server, without persistence unless APPENDONLY (an append-only file synced
    every second, in WORKDIR); stops it (and only it) on exit.

    A free port can be taken by another program before redis-server binds it (tests and demos
    run side by side on one machine). Then our server exits, or, worse, another Redis answers
    on that port; so the server that answers must be ours (its process id), and a port picked
    here is picked again."""

    ATTEMPTS = 3

    def __init__(self, workdir: Path, port: int | None = None, *,
                 appendonly: bool = False) -> None:
        self.workdir = workdir
        self.appendonly = appendonly
        self.port = port or free_port()
        self._port_given = port is not None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ConfigError("redis-server is not installed: run the README's setup "
                              "(apt-get install redis-server) or set REDIS_URL")
        self.workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1 if self._port_given else self.ATTEMPTS):
            if attempt:
                self.port = free_port()
            if self._launch(binary, timeout):
                return self
        raise ConfigError(f"redis-server did not start on port {self.port}; "
                          f"see {self.workdir / 'redis.log'}")

    def _launch(self, binary: str, timeout: float) -> bool:
        """Start redis-server on self.port; False when the port turned out to be taken."""
        log = (self.workdir / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "everysec",
             "--dir", str(self.workdir), "--protected-mode", "yes"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        client = redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    answered: int | None = int(client.info("server")["process_id"])
                except (redis.ConnectionError, redis.TimeoutError):
                    answered = None  # not listening yet, or a program that says nothing
                except redis.RedisError:
                    answered = 0  # a program that is not Redis
                if answered == self.process.pid:
                    return True
                if answered is not None or self.process.poll() is not None:
                    self.stop()  # another program has the port
                    return False
                if time.monotonic() > deadline:
                    self.stop()
                    raise ConfigError(f"redis-server did not start on port {self.port}; "
                                      f"see {self.workdir / 'redis.log'}")
                time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL, as a crash: what was not yet written to disk is lost."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
