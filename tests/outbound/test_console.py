"""The demo provider: its record file is the demo's phone and mailbox (numbers, codes and links
in full, for its owner only); its log lines mask all of that."""

from __future__ import annotations

import asyncio
import json
import logging
import stat
import threading
from pathlib import Path

import pytest

from core.models import Channel
from core.participants import Erased
from outbound.codes import code_text
from outbound.links import reaction_link
from outbound.providers import Message
from outbound.providers.console import ConsoleProvider, forget_recipients, forget_sent

CODE_SMS = Message(0, Channel.SMS, "+31612345678",
                   code_text("482913", "nl", "https://burgernet.example"), "nl")
LINK = reaction_link("https://burgernet.example", "test-secret-key", 41, "nl")
INQUIRY = Message(41, Channel.EMAIL, "deelnemer@example.org",
                  f"Heeft u iets gezien? Reageer via {LINK}", "nl", subject="Inbraak")


def _send(provider: ConsoleProvider, *messages: Message) -> list[str]:
    async def send_all() -> list[str]:
        return [await provider.send(message) for message in messages]
    return asyncio.run(send_all())


def test_the_log_masks_number_code_address_and_link_and_the_file_keeps_them(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    outbox = tmp_path / "var" / "console-outbox.jsonl"
    caplog.set_level(logging.DEBUG)
    _send(ConsoleProvider(outbox), CODE_SMS, INQUIRY)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "sms to +31 6 ****5678" in logged and "code is ******" in logged
    assert "email to d***@example.org" in logged and "/reactie/***" in logged
    for secret in ("612345678", "482913", "deelnemer@", LINK.rsplit("/", 1)[1]):
        assert secret not in logged, secret
    records = [json.loads(line) for line in outbox.read_text().splitlines()]
    assert [(r["to"], r["body"]) for r in records] == [
        ("+31612345678", CODE_SMS.body), ("deelnemer@example.org", INQUIRY.body)]
    assert stat.S_IMODE(outbox.stat().st_mode) == 0o600


def test_an_existing_record_file_is_made_private(tmp_path: Path) -> None:
    outbox = tmp_path / "console-outbox.jsonl"
    outbox.write_text("")
    outbox.chmod(0o644)
    _send(ConsoleProvider(outbox), CODE_SMS)
    assert stat.S_IMODE(outbox.stat().st_mode) == 0o600


def test_an_erased_participant_s_messages_leave_the_record_file(tmp_path: Path) -> None:
    other = Message(7, Channel.SMS, "+31687654321", "Gezocht: man in rode jas", "nl")
    _send(ConsoleProvider(tmp_path / "console-outbox.jsonl"), CODE_SMS, other, INQUIRY)
    erased = Erased(3, "+31612345678", "Deelnemer@Example.org")
    assert forget_sent(tmp_path, [erased]) == 2
    kept = [json.loads(line)["to"] for line in
            (tmp_path / "console-outbox.jsonl").read_text().splitlines()]
    assert kept == ["+31687654321"]
    assert forget_sent(tmp_path, [erased]) == 0
    assert forget_recipients(tmp_path / "absent.jsonl", ["+31612345678"]) == 0


def test_messages_recorded_while_the_file_is_rewritten_are_kept(tmp_path: Path) -> None:
    outbox = tmp_path / "console-outbox.jsonl"
    provider = ConsoleProvider(outbox)
    others = [Message(n, Channel.SMS, f"+3169{n:07d}", "Gezocht", "nl") for n in range(1, 201)]

    def record_others() -> None:
        _send(provider, *others)

    writer = threading.Thread(target=record_others)
    writer.start()
    for _ in range(50):
        _send(provider, CODE_SMS)
        forget_recipients(outbox, ["+31612345678"])
    writer.join()
    kept = [json.loads(line)["to"] for line in outbox.read_text().splitlines()]
    assert sorted(kept) == sorted(message.to for message in others)
