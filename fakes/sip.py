"""Real SIP peers on loopback, for the SIP tests and `bench/sip.py`: Kamailio (registrar and
proxy) and SIPp, the Debian binaries started as processes of their own on free ports; and
the plumbing around them: free UDP ports, waiting for a peer to bind or answer, stopping it.

A peer that is not installed or does not start raises PeerError, whose message names the
package to install or ends with the peer's log."""

from __future__ import annotations

import fcntl
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

HOST = "127.0.0.1"


class PeerError(RuntimeError):
    """A peer is not installed, or did not start."""


def find_binary(name: str, package: str) -> str | None:
    """The path of NAME (also in the sbin directories), or None."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def missing_binary(name: str, package: str) -> str:
    return f"{name} is not installed: apt-get install {package}"


def binary(name: str, package: str) -> str:
    """The path of NAME; PeerError naming PACKAGE when it is not installed."""
    path = find_binary(name, package)
    if path is None:
        raise PeerError(missing_binary(name, package))
    return path


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


#: Lock files of the ports this process has handed out, held open until it ends.
_CLAIMED: list[int] = []
_CLAIMS = Path(tempfile.gettempdir()) / "burgernet-udp-ports"


def _claim(port: int) -> bool:
    """Reserve PORT against every other process that asks here, until this one ends: a port
    is free between our check and the peer's bind, and the test command runs two test
    processes side by side (SIPp then exits 254, "cannot bind")."""
    _CLAIMS.mkdir(exist_ok=True)
    handle = os.open(_CLAIMS / str(port), os.O_CREAT | os.O_RDWR, 0o666)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(handle)
        return False
    _CLAIMED.append(handle)
    return True


def free_udp_port(span: int = 1) -> int:
    """A free UDP port on 127.0.0.1 with the SPAN-1 ports after it free too (the kernel picks
    from the ephemeral range, 32768 and up, outside the app's RTP range), handed out once:
    never again in this process, nor in another process that asks here while this one runs."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        ports = range(port, port + span)
        if port + span < 65535 and all(_udp_free(p) for p in ports[1:]) \
                and all(_claim(p) for p in ports):
            return port
    raise RuntimeError("no free UDP port range on 127.0.0.1")


def wait_bound(port: int, process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Wait until PROCESS has bound UDP PORT (we can no longer bind it)."""
    deadline = time.monotonic() + timeout
    while _udp_free(port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise PeerError(f"nothing bound UDP port {port} (exit code {process.poll()})")
        time.sleep(0.02)


def sip_options(port: int, timeout: float = 0.2, *, host: str = HOST) -> str | None:
    """The status line of the answer to an OPTIONS sent to HOST:PORT, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        sock.settimeout(timeout)
        local = sock.getsockname()[1]
        request = (f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP {HOST}:{local};branch=z9hG4bK{random.getrandbits(40):x}\r\n"
                   f"From: <sip:probe@{HOST}>;tag=probe\r\nTo: <sip:{host}:{port}>\r\n"
                   f"Call-ID: probe-{random.getrandbits(40):x}\r\nCSeq: 1 OPTIONS\r\n"
                   "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        sock.sendto(request.encode(), (host, port))
        try:
            return sock.recv(4096).split(b"\r\n", 1)[0].decode()
        except OSError:
            return None


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop PROCESS and its children (it leads its own process group)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def kamailio(config: str, workdir: Path, port: int, *, memory_mb: int = 32,
             private_mb: int = 4, defines: Sequence[str] = ()) -> Iterator[subprocess.Popen[bytes]]:
    """Kamailio running CONFIG (the text of a kamailio.cfg that listens on PORT), its config,
    pid, runtime files and log (kamailio.log) in WORKDIR; yields it once it answers OPTIONS
    and stops it afterwards. MEMORY_MB of shared and PRIVATE_MB of private memory; DEFINES
    are the config's pre-processor defines (`NAME=value`, kamailio -A)."""
    path = binary("kamailio", "kamailio")
    (workdir / "kamailio.cfg").write_text(config)
    log_path = workdir / "kamailio.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [path, "-f", str(workdir / "kamailio.cfg"), "-DD", "-E",
             "-P", str(workdir / "kamailio.pid"), "-Y", str(workdir), "-w", str(workdir),
             "-m", str(memory_mb), "-M", str(private_mb),
             *(argument for define in defines for argument in ("-A", define))],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while sip_options(port) != "SIP/2.0 200 OK":
            if process.poll() is not None or time.monotonic() > deadline:
                raise PeerError(f"Kamailio did not answer OPTIONS on {HOST}:{port}:\n"
                                f"{log_path.read_text(errors='replace')[-3000:]}")
        yield process
    finally:
        stop_process(process)


def sipp(scenario: Path, workdir: Path, *, port: int, media_port: int,
         arguments: Sequence[str] = (), proxy_port: int | None = None) -> subprocess.Popen[bytes]:
    """SIPp running SCENARIO on PORT, its RTP on MEDIA_PORT and its files in WORKDIR (errors.log,
    stats.csv, and its screen and stderr in screen.log), with ARGUMENTS added. With PROXY_PORT
    a UAC calling through the proxy there; else a UAS, returned once it has bound PORT."""
    command = [binary("sipp", "sip-tester"), *([f"{HOST}:{proxy_port}"] if proxy_port else []),
               "-sf", str(scenario), "-i", HOST, "-p", str(port),
               "-mi", HOST, "-mp", str(media_port), "-nostdin",
               "-trace_err", "-error_file", str(workdir / "errors.log"),
               "-trace_stat", "-stf", str(workdir / "stats.csv"), *arguments]
    with (workdir / "screen.log").open("wb") as screen:
        process = subprocess.Popen(command, cwd=workdir, stdout=screen,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    if proxy_port is None:
        try:
            wait_bound(port, process)
        except PeerError:
            stop_process(process)
            raise
    return process
