"""Unconfirmed sign-ups are not kept: every worker purges them every RECLAIM_EVERY seconds,
and `burgernet purge` does the same for a deployment that runs none (from cron, say)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
from sqlalchemy.orm import Session, sessionmaker

from core.cli import Context, pass_context
from core.db import transaction
from core.participants import PURGE_BATCH, purge_unverified
from outbound.providers.console import forget_sent


def purge_unconfirmed(sessions: sessionmaker[Session], var_dir: Path, now: datetime) -> int:
    """Erase every sign-up whose code expired unconfirmed, a batch per transaction, and
    their messages from the demo's record; returns how many went."""
    total = 0
    while True:
        with transaction(sessions) as session:
            gone = purge_unverified(session, now)
        forget_sent(var_dir, gone)
        total += len(gone)
        if len(gone) < PURGE_BATCH:
            return total


@click.command("purge")
@pass_context
def purge_command(context: Context) -> None:
    """Erase sign-ups never confirmed whose code has expired (workers do this every 30 s)."""
    context.ready_engine()
    count = purge_unconfirmed(context.sessions, context.settings.var_dir, datetime.now(UTC))
    click.echo(f"{count} unconfirmed sign-up(s) erased")
