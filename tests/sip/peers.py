"""Loopback plumbing shared by the SIP tests and `bench/sip.py`: free UDP ports, waiting for
a peer to bind or answer, finding and stopping the Debian binaries."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time

HOST = "127.0.0.1"


def find_binary(name: str, package: str) -> str | None:
    """The path of NAME (also in the sbin directories), or None."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def missing_binary(name: str, package: str) -> str:
    return f"{name} is not installed: apt-get install {package}"


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def free_udp_port(span: int = 1) -> int:
    """A free UDP port on 127.0.0.1 with the SPAN-1 ports after it free too (the kernel picks
    from the ephemeral range, 32768 and up, outside the app's RTP range)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if port + span < 65535 and all(_udp_free(port + i) for i in range(1, span)):
            return port
    raise RuntimeError("no free UDP port range on 127.0.0.1")


def wait_bound(port: int, process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Wait until PROCESS has bound UDP PORT (we can no longer bind it)."""
    deadline = time.monotonic() + timeout
    while _udp_free(port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"nothing bound UDP port {port} (exit code {process.poll()})")
        time.sleep(0.02)


def sip_options(port: int, timeout: float = 0.2) -> str | None:
    """The status line of the answer to an OPTIONS sent to 127.0.0.1:PORT, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        sock.settimeout(timeout)
        local = sock.getsockname()[1]
        request = (f"OPTIONS sip:{HOST}:{port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP {HOST}:{local};branch=z9hG4bK{random.getrandbits(40):x}\r\n"
                   f"From: <sip:probe@{HOST}>;tag=probe\r\nTo: <sip:{HOST}:{port}>\r\n"
                   f"Call-ID: probe-{random.getrandbits(40):x}\r\nCSeq: 1 OPTIONS\r\n"
                   "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        sock.sendto(request.encode(), (HOST, port))
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
