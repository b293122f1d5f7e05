"""`burgernet status`: whether alerts go out, for a person at a terminal (or, with --json, for
a script). The exit status is 1 when something is wrong (`outbound.status.problems`)."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

import click

from outbound.cli import pass_runtime
from outbound.runtime import Runtime
from outbound.status import SystemStatus, WorkerState, system_status


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object (for scripts)")
@pass_runtime
def status_command(runtime: Runtime, as_json: bool) -> None:
    """Workers, queues, what active actions have left to send, send rates and SIP
    registration; exit status 1 when something is wrong."""
    status = system_status(runtime)
    click.echo(json.dumps(as_dict(status), indent=2) if as_json else "\n".join(report(status)))
    if status.problems:
        raise click.exceptions.Exit(1)


def as_dict(status: SystemStatus) -> dict[str, Any]:
    """STATUS as plain JSON values (times in ISO 8601); `ok` is False when anything is wrong."""
    return {"ok": not status.problems, **_plain(asdict(status))}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value.isoformat() if isinstance(value, datetime) else value


def report(status: SystemStatus) -> list[str]:
    """STATUS in lines of English for an operator."""
    lines = [f"Burgernet at {status.at:%Y-%m-%d %H:%M:%S} UTC",
             f"database  {status.database}", f"Redis     {status.redis}"]
    lines += _workers(status)
    lines += _queues(status)
    lines += _backlog(status)
    lines += _rates(status)
    lines += _sip(status)
    if status.problems:
        lines += ["", "PROBLEMS"] + [f"  - {problem}" for problem in status.problems]
    else:
        lines += ["", "all is well"]
    return lines


def _workers(status: SystemStatus) -> list[str]:
    if status.workers is None:
        return ["", "workers   unknown (no Redis)"]
    alive = sum(w.alive for w in status.workers)
    lines = ["", f"workers   {alive} alive" + (f", {len(status.workers) - alive} silent"
                                                 if len(status.workers) > alive else "")]
    lines += [f"  {_worker(w, status.at)}" for w in status.workers]
    return lines


def _worker(worker: WorkerState, now: datetime) -> str:
    beat = ("never reported" if worker.last_heartbeat is None
            else f"reported {_age((now - worker.last_heartbeat).total_seconds())} ago")
    doing = f"{worker.state} {worker.job_id}" if worker.job_id else worker.state
    return f"{worker.name:32} {doing if worker.alive else 'SILENT':24} {beat}"


def _queues(status: SystemStatus) -> list[str]:
    if status.queues is None:
        return ["", "queues    unknown (no Redis)"]
    busy = [q for q in status.queues if not q.empty]
    lines = ["", f"queues    {len(busy)} of {len(status.queues)} in use"]
    if busy:
        lines.append(f"  {'queue':16} {'waiting':>8} {'oldest':>8} {'scheduled':>10} "
                     f"{'running':>8} {'failed':>7}")
    for q in busy:
        oldest = "-" if q.oldest_seconds is None else _age(q.oldest_seconds)
        lines.append(f"  {q.name:16} {q.waiting:>8} {oldest:>8} {q.scheduled:>10} "
                     f"{q.running:>8} {q.failed:>7}")
    return lines


def _backlog(status: SystemStatus) -> list[str]:
    if status.backlog is None:
        return ["", "outbox    unknown (no database)"]
    lines = ["", "outbox    " + (f"{len(status.backlog)} active action(s) with messages to send"
                                 if status.backlog else "nothing left to send")]
    for b in status.backlog:
        oldest = ("" if b.oldest_due_seconds is None
                  else f" (oldest waiting {_age(b.oldest_due_seconds)})")
        lines.append(f"  action {b.action_id} ({b.kind}, {b.urgency}): {b.due} due{oldest}, "
                     f"{b.held} held, {b.sending} sending")
    return lines


def _rates(status: SystemStatus) -> list[str]:
    if status.rates is None:
        return ["", "rates     unknown (no Redis)"]
    lines = ["", "rates     sends in the last second, against the limit"]
    for r in status.rates:
        if r.last_second is None:
            lines.append(f"  {r.channel:6} no limit")
            continue
        booked = f"; slots booked {_age(r.booked_seconds)} ahead" if r.booked_seconds >= 1 \
            else ""
        lines.append(f"  {r.channel:6} {r.last_second} of {r.limit:g}/s{booked}")
    return lines


def _sip(status: SystemStatus) -> list[str]:
    if status.sip is None:
        return ["", "SIP       unknown (no Redis)"]
    if not status.sip:
        return ["", "SIP       no node reports (`burgernet sip` is not running, or runs "
                "without REDIS_URL)"]
    lines = ["", f"SIP       {len(status.sip)} node(s)"]
    for node in status.sip:
        state = "registered" if node.registered else "NOT REGISTERED"
        lines.append(f"  {node.node} at {node.proxy}: {state} (host {node.host}, reported "
                     f"{_age((status.at - node.at).total_seconds())} ago)")
    return lines


def _age(seconds: float) -> str:
    """SECONDS as a person reads a wait: 4 s, 3 min, 2 h 5 min."""
    if seconds < 120:
        return f"{max(0, round(seconds))} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"
