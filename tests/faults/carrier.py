"""What the carrier and mail faults share: their variants (short in CI, the issue's durations
with FAULT_FULL=1, FAULT_TRIALS repeats), the CPU time of worker processes read from /proc,
the count of what reached the fake carrier or the SMTP server against the deliveries, and
the FAULT line each trial prints."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import make_engine
from core.models import Channel, Delivery, DeliveryStatus, Participant
from fakes.smtp import Inbox
from fakes.twilio import FakeTwilioServer

#: Runs of each fault (FAULT_TRIALS=5, or 20, for the table in docs/reliability.md).
TRIALS = int(os.environ.get("FAULT_TRIALS", "1"))
#: The issue's durations; CI runs shorter outages.
FULL = os.environ.get("FAULT_FULL") == "1"
TICKS = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue  # the thread ended meanwhile
    return found


def _own_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0  # gone
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def cpu_seconds(processes: list[subprocess.Popen[bytes]]) -> float:
    """CPU time (user and system) used so far by PROCESSES and their live children (a
    worker's RQ scheduler is a forked process of its own)."""
    total, seen = 0.0, set()
    pending = [p.pid for p in processes]
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += _own_cpu(pid)
        pending += _children(pid)
    return total


@dataclass(frozen=True)
class Count:
    """Deliveries of the action, against what reached the peers: those not sent or not
    there (lost), and the copies beyond one (duplicated)."""

    messages: int
    lost: int
    duplicated: int


def _deliveries(url: str, action_id: int) -> list[tuple[Delivery, Participant]]:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            rows = session.execute(
                select(Delivery, Participant)
                .join(Participant, Participant.id == Delivery.participant_id)
                .where(Delivery.action_id == action_id)).all()
            return [(row[0], row[1]) for row in rows]
    finally:
        engine.dispose()


def count(url: str, action_id: int, fake: FakeTwilioServer | None = None,
          inbox: Inbox | None = None) -> Count:
    """What became of the action's deliveries: SMS and calls counted at FAKE, e-mail in
    INBOX; push (on the console provider) by its status alone."""
    at_peer: Counter[tuple[str, str]] = Counter()
    if fake is not None:
        at_peer.update(("call" if r.kind == "call" else "sms", r.to) for r in fake.fake.records)
    if inbox is not None:
        at_peer.update(("email", address) for envelope, _mail in list(inbox.messages)
                       for address in envelope.rcpt_tos)
    rows = _deliveries(url, action_id)
    lost = 0
    for delivery, person in rows:
        key = {Channel.SMS: ("sms", person.phone), Channel.VOICE: ("call", person.phone),
               Channel.EMAIL: ("email", person.email)}.get(delivery.channel)
        counted = key is not None and ((key[0] != "email" and fake is not None)
                                       or (key[0] == "email" and inbox is not None))
        if delivery.status != DeliveryStatus.SENT or (counted and at_peer[key] == 0):
            lost += 1
    duplicated = sum(n - 1 for n in at_peer.values() if n > 1)
    return Count(len(rows), lost, duplicated)


def fault_line(name: str, trial: int, counted: Count, recover_s: float, **extra: object) -> str:
    """The line a trial prints (pytest -s shows it), for the table in docs/reliability.md."""
    line = (f"FAULT {name} trial={trial} messages={counted.messages} lost={counted.lost} "
            f"duplicated={counted.duplicated} recover_s={recover_s:.1f}")
    line += "".join(f" {key}={value}" for key, value in extra.items())
    print(f"\n{line}", flush=True)
    return line
