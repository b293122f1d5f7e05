"""One of two IVR nodes killed while calls come in (issue 14, points 7 and 8).

Real processes on loopback: Kamailio running docker/kamailio.cfg (registrar, and the dispatcher
probing the nodes with OPTIONS each second), two `burgernet sip` nodes started as compose's
ivr-a and ivr-b run them, on 127.0.0.2 and 127.0.0.3 with a BURGERNET_HOME each and one
database, a SIPp "trunk" answering for the meldkamers, and callers (a SIPp each) dialling the
free number who key a postcode and are put through. While calls come in, ivr-a is SIGKILLed.

Every call is counted: completed (put through, our BYE at the end), cut (it was on the killed
node: nothing can save it), or lost (anything else: the test fails). New calls (not answered
when the kill came) must reach the survivor within 5 s of the kill or of their INVITE, the
calls already on the survivor must complete, and no call may be answered by both nodes.
FAULT_TRIALS=N repeats it; FAULT_FULL=1 makes more calls come in faster.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from core.db import make_engine, session_factory
from core.models import CallRecord
from core.reference import load_reference
from core.schema import ensure_schema
from core.settings import DEFAULT_DATA_DIR
from fakes import sip as peers
from fakes.sip import PeerError, free_udp_port, stop_process
from ivr.prompts import load_catalogue
from ivr.tts import PromptRenderer
from tests.conftest import MELDKAMER_CONFIG
from tests.faults.carrier import TRIALS
from tests.faults.ivr_pair import (
    FREE_NUMBER,
    KAMAILIO_CONFIG,
    NODES,
    Caller,
    Node,
    dispatcher_list,
    free_port_on_every_node,
    kamailio_defines,
    read_trace,
    running,
    start_node,
    wait_registered,
)
from tests.sip.conftest import DATA
from tests.sip.test_free_number import caller_scenario

FULL = os.environ.get("FAULT_FULL") == "1"
#: Calls per trial, seconds between them, and the call after whose start ivr-a is killed.
CALLS, EVERY, KILL_AFTER = (40, 0.5, 12) if FULL else (14, 0.8, 6)
#: New calls reach the survivor within this of the kill (issue 14).
NEW_CALLS_WITHIN = 5.0
#: Kamailio's two UDP workers may pass a node's 180 on after its 200 (UDP keeps no order);
#: a phone ignores the late 180, SIPp would abort the call: it goes on (and logs it) instead.
LATE_180_IS_NO_FAILURE = ("-default_behaviors", "all,-abortunexp")
#: A put-through call lasts ~9 s; a caller on the killed node gives up waiting after this.
CALLER_WAITS_S = 18


@pytest.fixture(scope="module")
def sounds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixed prompts, rendered once (`burgernet sounds render --no-gtts`) for both nodes."""
    path = tmp_path_factory.mktemp("sounds")
    PromptRenderer(path, use_gtts=False).render_fixed(load_catalogue())
    return path


@pytest.fixture(scope="module")
def database(new_database_url: Callable[[], str]) -> str:
    url = new_database_url()
    engine = make_engine(url)
    ensure_schema(engine)
    with session_factory(engine, writer=True)() as session, session.begin():
        load_reference(session, DEFAULT_DATA_DIR, MELDKAMER_CONFIG)
    engine.dispose()
    return url


@dataclass
class Trial:
    callers: list[Caller]
    call_ids: list[str]
    exit_codes: list[int | None]
    killed_at: float
    survivor: str
    down_after_s: float | None


@pytest.mark.slow
def test_one_of_two_ivr_nodes_killed_while_calls_come_in(
        tmp_path: Path, sounds: Path, database: str) -> None:
    for binary, package in (("kamailio", "kamailio"), ("sipp", "sip-tester")):
        if peers.find_binary(binary, package) is None:
            pytest.fail(peers.missing_binary(binary, package), pytrace=False)
    for trial_number in range(1, TRIALS + 1):
        workdir = tmp_path / f"trial-{trial_number}"
        workdir.mkdir()
        try:
            trial = _run_trial(workdir, sounds, database)
        except PeerError as error:
            pytest.fail(str(error), pytrace=False)
        _judge(trial, trial_number, database)


def _judge(trial: Trial, number: int, database: str) -> None:
    killed, survivor = NODES["ivr-a"], trial.survivor
    cut, on_survivor, new, lost, twice = [], [], [], [], []
    waits: list[float] = []
    for caller, code in zip(trial.callers, trial.exit_codes, strict=True):
        completed = code == 0 and caller.hung_up_by_us
        if len(caller.answered_by) > 1:
            twice.append(caller)
        if caller.answered is not None and caller.answered < trial.killed_at:
            if caller.answered_by == (killed,):
                cut.append(caller)
                continue
            on_survivor.append(caller)
        else:
            new.append(caller)
            if caller.answered is not None and caller.answered_by == (survivor,):
                start = max(caller.invited or trial.killed_at, trial.killed_at)
                waits.append(caller.answered - start)
        if not completed:
            lost.append(caller)
    recover = max(waits, default=0.0)
    print(f"\nFAULT ivr_node_killed trial={number} messages={len(trial.callers)} "
          f"lost={len(lost)} duplicated={len(twice)} recover_s={recover:.1f}")
    down = "never" if trial.down_after_s is None else f"{trial.down_after_s:.1f} s"
    print(f"  calls: {len(on_survivor)} on the survivor at the kill, {len(new)} new, "
          f"{len(cut)} cut with the killed node; Kamailio took the node down after {down}")
    assert not lost, f"calls neither completed nor cut: {lost} (exit codes {trial.exit_codes})"
    assert not twice, f"calls answered by both nodes: {twice}"
    assert on_survivor and new and len(waits) == len(new), (on_survivor, new, waits)
    assert recover <= NEW_CALLS_WITHIN, f"a new call waited {recover:.1f} s for the survivor"
    engine = make_engine(database)
    with session_factory(engine)() as session:
        outcomes = {call_id: outcome for call_id, outcome in session.execute(
            select(CallRecord.provider_call_id, CallRecord.outcome)
            .where(CallRecord.provider_call_id.in_(trial.call_ids)))}
    engine.dispose()
    completed_ids = [call_id for call_id, caller in zip(trial.call_ids, trial.callers,
                                                        strict=True)
                     if caller in on_survivor or caller in new]
    assert {outcomes.get(call_id) for call_id in completed_ids} == {"connected"}, outcomes


def _run_trial(workdir: Path, sounds: Path, database: str) -> Trial:
    proxy_port, trunk_port, node_port = free_udp_port(), free_udp_port(), free_port_on_every_node()
    list_path = workdir / "dispatcher.list"
    list_path.write_text(dispatcher_list({name: (address, node_port)
                                          for name, address in NODES.items()}))
    trunk_dir = workdir / "trunk"
    trunk_dir.mkdir()
    trunk = peers.sipp(DATA / "uas_answer_then_bye.xml", trunk_dir, port=trunk_port,
                       media_port=free_udp_port(span=4))
    (workdir / "kamailio").mkdir()
    env = {"DATABASE_URL": database, "MELDKAMER_CONFIG": str(MELDKAMER_CONFIG),
           "TTS": "espeak", "SECRET_KEY": "k", "METRICS_PORT": "0"}
    try:
        with peers.kamailio(KAMAILIO_CONFIG.read_text(), workdir / "kamailio", proxy_port,
                            defines=kamailio_defines(proxy_port, list_path, trunk_port)), \
                running([start_node(name, port=node_port, proxy_port=proxy_port,
                                    rtp_low=low, home=workdir / name, sounds=sounds, env=env)
                         for name, low in zip(NODES, (42000, 42500), strict=True)]) as nodes:
            wait_registered(nodes)
            _wait_dispatching(nodes, workdir / "kamailio" / "kamailio.log")
            return _calls_and_kill(workdir, proxy_port, nodes)
    finally:
        stop_process(trunk)


def _node_events(log: Path) -> list[tuple[str, str]]:
    """Kamailio's dispatcher events so far: (up|down, what it logged: the probed node's URI, or
    the request's and the node's after a failed INVITE), in order."""
    return re.findall(r"IVR: node (up|down) (.*)", log.read_text(errors="replace"))


def _wait_dispatching(nodes: list[Node], log: Path, timeout: float = 20.0) -> None:
    """Both nodes answer OPTIONS, and after two probe rounds the dispatcher has them up."""
    deadline = time.monotonic() + timeout
    for node in nodes:
        while peers.sip_options(node.port, host=node.address) != "SIP/2.0 200 OK":
            if time.monotonic() > deadline:
                raise PeerError(f"{node.service} does not answer OPTIONS:\n{node.log()[-2000:]}")
            time.sleep(0.1)
    while True:
        time.sleep(3.0)  # a probe a second, each failing after 2 s
        last = {node.uri: state for state, logged in _node_events(log) for node in nodes
                if node.uri in logged}
        if all(last.get(node.uri, "up") == "up" for node in nodes):
            return
        if time.monotonic() > deadline:
            raise PeerError(f"the dispatcher does not take the nodes: {last}")


def _calls_and_kill(workdir: Path, proxy_port: int, nodes: list[Node]) -> Trial:
    scenario = caller_scenario(workdir, "3441#")
    text = scenario.read_text().replace('<recv request="BYE" timeout="60000"/>',
                                        f'<recv request="BYE" timeout="{CALLER_WAITS_S}000"/>')
    scenario.write_text(text)
    log = workdir / "kamailio" / "kamailio.log"
    victim, survivor = nodes
    calls, dirs = [], []
    killed_at, killed_mono, down_after, seen = None, 0.0, None, 0
    next_call = time.monotonic()
    while len(calls) < CALLS or down_after is None:
        now = time.monotonic()
        if killed_at is not None and down_after is None and any(
                state == "down" and victim.uri in logged
                for state, logged in _node_events(log)[seen:]):
            down_after = now - killed_mono
        if killed_at is not None and now - killed_mono > 15 and down_after is None:
            break
        if len(calls) < CALLS and now >= next_call:
            directory = workdir / f"call-{len(calls):02}"
            directory.mkdir()
            calls.append(peers.sipp(
                scenario, directory, port=free_udp_port(), media_port=free_udp_port(span=4),
                proxy_port=proxy_port,
                arguments=["-m", "1", "-s", FREE_NUMBER, "-timeout", f"{CALLER_WAITS_S + 20}s",
                           "-timeout_error", *LATE_180_IS_NO_FAILURE, "-trace_msg",
                           "-message_file", str(directory / "messages.log")]))
            dirs.append(directory)
            next_call += EVERY
            if len(calls) == KILL_AFTER:
                seen = len(_node_events(log))
                victim.kill()
                killed_at, killed_mono = time.time(), time.monotonic()
        time.sleep(0.02)
    assert killed_at is not None
    deadline = time.monotonic() + CALLER_WAITS_S + 15
    codes: list[int | None] = []
    for process in calls:
        try:
            codes.append(process.wait(timeout=max(0.1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:  # still running: stopped below, counted as lost
            codes.append(None)
        stop_process(process)
    callers = [read_trace((directory / "messages.log").read_text(errors="replace"))
               if (directory / "messages.log").exists() else Caller() for directory in dirs]
    call_ids = [_call_id(directory) for directory in dirs]
    return Trial(callers, call_ids, codes, killed_at, survivor.address, down_after)


def _call_id(directory: Path) -> str:
    path = directory / "messages.log"
    found = re.search(r"^Call-ID: *(\S+)", path.read_text(errors="replace") if path.exists()
                      else "", re.M | re.I)
    return found.group(1) if found else f"(none: {directory.name})"

