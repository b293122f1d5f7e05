"""Two IVR nodes (`burgernet sip`) behind Kamailio's dispatcher, as docker-compose.yml deploys
them, on loopback: the nodes on 127.0.0.2 and 127.0.0.3 (Linux routes all of 127.0.0.0/8 to
lo) as two hosts would be, each with its own BURGERNET_HOME and the one database, Kamailio
running docker/kamailio.cfg on 127.0.0.1.

docker-compose.yml is the source of truth: a node is started with the command and the SIP
settings of its compose service, only the host's own values (addresses, ports, paths)
replaced; `tests/test_compose_ivr.py` checks the compose file against what is replaced here.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from fakes.sip import HOST, PeerError, free_udp_port, stop_process

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
KAMAILIO_CONFIG = ROOT / "docker" / "kamailio.cfg"
DISPATCHER_LIST = ROOT / "docker" / "dispatcher.list"
#: The compose services of the two nodes, and the loopback address each "host" has here.
NODES = {"ivr-a": "127.0.0.2", "ivr-b": "127.0.0.3"}
#: What differs between hosts: the only settings a test replaces in a node's compose service.
HOST_SETTINGS = ("SIP_PROXY", "SIP_LOCAL_IP", "SIP_PORT", "SIP_RTP_PORTS")
#: The free number as callers dial it (docker/kamailio.cfg's FREE_NUMBER matches it).
FREE_NUMBER = "08000011"
#: The defines of docker/kamailio.cfg a test gives (the site's own values).
KAMAILIO_DEFINES = ("LISTEN", "ALIAS", "DISPATCHER_LIST", "TRUNK")


def compose_services() -> dict[str, dict]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def node_command(service: str) -> list[str]:
    """The node's compose command as a process here runs it (`burgernet` is core.cli)."""
    command = compose_services()[service]["command"]
    assert command[0] == "burgernet", command
    return [sys.executable, "-m", "core.cli", *command[1:]]


def node_sip_settings(service: str, host: Mapping[str, str]) -> dict[str, str]:
    """The SIP_* settings of SERVICE in docker-compose.yml with HOST's values (HOST_SETTINGS,
    all of them) in place of the compose ones."""
    environment = {key: str(value)
                   for key, value in compose_services()[service]["environment"].items()
                   if key.startswith("SIP_")}
    assert sorted(host) == sorted(HOST_SETTINGS) and set(host) <= set(environment), \
        (sorted(host), sorted(environment))
    return {**environment, **host}


def compose_dispatcher_nodes() -> list[str]:
    """The destinations of set 1 in docker/dispatcher.list (what compose's Kamailio uses)."""
    return dispatcher_nodes(DISPATCHER_LIST.read_text())


def dispatcher_nodes(text: str) -> list[str]:
    return [line.split()[1] for line in text.splitlines()
            if line.strip() and not line.startswith("#") and line.split()[0] == "1"]


def dispatcher_list(nodes: Mapping[str, tuple[str, int]]) -> str:
    """docker/dispatcher.list with NODES' addresses (service -> (address, port)) in place of
    the compose network's, in the same order and with the same flags and attributes."""
    compose = compose_services()
    lines = []
    for line in DISPATCHER_LIST.read_text().splitlines():
        fields = line.split()
        if fields and not line.startswith("#"):
            service = next(name for name in NODES
                           if fields[1] == f"sip:{compose_address(compose, name)}:"
                                           f"{compose[name]['environment']['SIP_PORT']}")
            address, port = nodes[service]
            line = " ".join([fields[0], f"sip:{address}:{port}", *fields[2:]])
        lines.append(line)
    return "\n".join(lines) + "\n"


def compose_address(compose: Mapping[str, dict], service: str) -> str:
    """SERVICE's fixed address on the compose network `sip`."""
    return str(compose[service]["networks"]["sip"]["ipv4_address"])


def free_port_on_every_node() -> int:
    """A UDP port free on 127.0.0.1 (claimed there, see fakes.sip.free_udp_port) and on each
    node's address."""
    for _ in range(50):
        port = free_udp_port()
        if all(_udp_free(address, port) for address in NODES.values()):
            return port
    raise RuntimeError("no UDP port free on every node's address")


def _udp_free(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def kamailio_defines(port: int, list_path: Path, trunk_port: int) -> list[str]:
    values = {"LISTEN": f"udp:{HOST}:{port}", "ALIAS": f'"{HOST}:{port}"',
              "DISPATCHER_LIST": f'"{list_path}"', "TRUNK": f'"sip:{HOST}:{trunk_port}"'}
    assert tuple(values) == KAMAILIO_DEFINES
    return [f"{name}={value}" for name, value in values.items()]


@dataclass
class Node:
    """One `burgernet sip` process and what it was started with."""

    service: str
    address: str
    port: int
    home: Path
    process: subprocess.Popen[bytes]

    @property
    def uri(self) -> str:
        return f"sip:{self.address}:{self.port}"

    def log(self) -> str:
        return (self.home / "sip.log").read_text(errors="replace")

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


def start_node(service: str, *, port: int, proxy_port: int, rtp_low: int, home: Path,
               sounds: Path, env: Mapping[str, str]) -> Node:
    """`burgernet sip` as compose's SERVICE runs it, on its loopback "host", with the prompts
    rendered in SOUNDS and ENV (database, paths) added."""
    address = NODES[service]
    home.mkdir(parents=True)
    shutil.copytree(sounds, home / "var" / "sounds")
    sip = node_sip_settings(service, {
        "SIP_PROXY": f"{HOST}:{proxy_port}", "SIP_LOCAL_IP": address, "SIP_PORT": str(port),
        "SIP_RTP_PORTS": f"{rtp_low}-{rtp_low + 400}"})
    with (home / "sip.log").open("wb") as log:
        process = subprocess.Popen(
            node_command(service), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, **env, **sip, "BURGERNET_HOME": str(home)})
    return Node(service, address, port, home, process)


def wait_registered(nodes: list[Node], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    for node in nodes:
        while "registered as" not in node.log():
            if node.process.poll() is not None or time.monotonic() > deadline:
                raise PeerError(f"{node.service} did not register:\n{node.log()[-3000:]}")
            time.sleep(0.1)


@contextmanager
def running(nodes: list[Node]) -> Iterator[list[Node]]:
    try:
        yield nodes
    finally:
        for node in nodes:
            stop_process(node.process)


# --- what a caller saw (SIPp's message trace) ---------------------------------------------------

_ENTRY = re.compile(r"^-{10,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\n(UDP message (sent|received)"
                    r"[^\n]*)\n\n", re.M)


@dataclass
class Caller:
    """One call of a caller (a SIPp of one call): when it sent its INVITE, who answered it and
    when, and whether the call ended normally (our BYE, SIPp's exit code 0)."""

    invited: float | None = None
    answered: float | None = None
    answered_by: tuple[str, ...] = ()
    hung_up_by_us: bool = False


def read_trace(text: str) -> Caller:
    """Caller from SIPp's -trace_msg file (its times are local: as time.time() here)."""
    caller = Caller()
    parts = _ENTRY.split(text)
    # [before, time, first line, sent|received, message, time, ...]
    for index in range(1, len(parts) - 3, 4):
        at = datetime.fromisoformat(parts[index]).timestamp()
        direction, message = parts[index + 2], parts[index + 3]
        first = message.split("\n", 1)[0]
        if direction == "sent" and first.startswith("INVITE ") and caller.invited is None:
            caller.invited = at
        elif direction == "received" and first.startswith("SIP/2.0 200") \
                and re.search(r"^CSeq: *\d+ INVITE", message, re.M | re.I):
            contact = re.search(r"^(?:Contact|m): *<?sip:[^@>]*@([\d.]+):", message,
                                re.M | re.I)
            node = contact.group(1) if contact else "?"
            if node not in caller.answered_by:
                caller.answered_by = (*caller.answered_by, node)
            caller.answered = caller.answered or at
        elif direction == "received" and first.startswith("BYE "):
            caller.hung_up_by_us = True
    return caller
