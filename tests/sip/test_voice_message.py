"""The SIP voice provider end to end: a voice message dials the participant (a SIPp phone)
through Kamailio, reads the action, and pressing 1 bridges the participant to the meldkamer."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.models import (
    Action,
    ActionKind,
    ActionStatus,
    CallRecord,
    Channel,
    Delivery,
    DeliveryStatus,
    Language,
    Meldkamer,
    Organisation,
    OrganisationKind,
    Participant,
    ParticipantStatus,
    Urgency,
)
from core.redis_server import EmbeddedRedis
from core.settings import Settings
from ivr.prompts import load_catalogue
from ivr.sip_runner import SipFlowRunner
from ivr.tts import PromptRenderer
from outbound.callbacks import apply_early
from outbound.providers import Message, ProviderError
from outbound.providers.sip import SipVoiceProvider
from outbound.runtime import build_runtime
from outbound.throttle import call_token
from tests.conftest import MELDKAMER_CONFIG
from tests.sip.conftest import DATA, free_udp_port
from tests.sip.test_free_number import NUMBERS

PARTICIPANT = "+31690001111"


def participant_scenario(tmp_path: Path, key: str | None) -> Path:
    """A phone that answers, presses KEY during the message (or nothing) and waits for BYE."""
    scenario = (DATA / "uas_answer.xml").read_text()
    press = ("" if key is None else
             f'  <pause milliseconds="1500"/>\n  <nop><action><exec play_pcap_audio='
             f'"/usr/share/sip-tester/dtmf_2833_{key}.pcap"/></action></nop>\n')
    scenario = re.sub(r'  <pause milliseconds="500"/>.*?(?=  <recv request="BYE")', press,
                      scenario, flags=re.S)
    scenario = scenario.replace('<recv request="BYE" timeout="15000"/>',
                                '<recv request="BYE" timeout="90000"/>')
    path = tmp_path / f"participant-{key}.xml"
    path.write_text(scenario)
    return path


@pytest.fixture
def meldkamer_port() -> int:
    return free_udp_port()


@pytest.fixture
def kamailio_routes(meldkamer_port: int) -> dict[str, int]:
    return {NUMBERS["MN"]: meldkamer_port}


@pytest.fixture
def delivery(sip_sessions: sessionmaker[Session]) -> Iterator[int]:
    with sip_sessions() as session:
        org = Organisation(name=f"Politie SIP {datetime.now(UTC).timestamp()}",
                           kind=OrganisationKind.POLICE)
        action = Action(kind=ActionKind.SUSPECT, urgency=Urgency.URGENT,
                        status=ActionStatus.ACTIVE, title_nl="Inbraak Woerden",
                        description_nl="Man met blauwe pet.", center_lat=52.085,
                        center_lon=4.883, radius_m=2000, organisation=org,
                        meldkamer=session.scalar(select(Meldkamer).where(Meldkamer.code == "MN")),
                        started_at=datetime.now(UTC) - timedelta(minutes=2))
        person = session.scalar(select(Participant).where(Participant.phone == PARTICIPANT)) \
            or Participant(phone=PARTICIPANT, status=ParticipantStatus.VERIFIED)
        item = Delivery(action=action, participant=person, channel=Channel.VOICE,
                        language=Language.NL, status=DeliveryStatus.SENDING)
        session.add(item)
        session.commit()
        yield item.id


@pytest.fixture
def provider(sip_sessions, renderer: PromptRenderer, endpoint) -> SipVoiceProvider:
    ended: list[tuple[int, str, str]] = []
    runner = SipFlowRunner(sip_sessions, load_catalogue(), renderer, national_fallback="MN",
                           message_text=lambda d: "Burgernet: inbraak in Woerden.",
                           dial_timeout=10)
    runner.endpoint = endpoint("burgernet-out")
    voice = SipVoiceProvider(runner.endpoint, runner, ring_timeout=5,
                             on_final=lambda *args: ended.append(args))
    voice.ended = ended  # type: ignore[attr-defined]
    return voice


def send(provider: SipVoiceProvider, delivery_id: int) -> str:
    message = Message(delivery_id=delivery_id, channel=Channel.VOICE, to=PARTICIPANT,
                      body="", language="nl")
    return asyncio.run(provider.send(message))


def test_pressing_1_in_the_message_puts_the_participant_through(
        tmp_path, sipp, kamailio, provider, delivery, meldkamer_port, sip_sessions):
    phone = sipp(str(participant_scenario(tmp_path, "1")), port=kamailio.trunk_port,
                 timeout=90)
    meldkamer = sipp("uas_answer_then_bye.xml", port=meldkamer_port, timeout=90)
    call_id = send(provider, delivery)
    assert provider.wait_idle(60)
    assert phone.wait(10) == 0, phone.report()
    assert meldkamer.wait(10) == 0, meldkamer.report()
    assert provider.ended == [(delivery, call_id, "completed")]  # type: ignore[attr-defined]
    with sip_sessions() as session:
        record = session.scalar(select(CallRecord).where(CallRecord.provider_call_id == call_id))
        assert record.direction == "outbound" and record.outcome == "connected"
        assert record.routing_reason.startswith("action: pressed 1")
        assert record.ended_at is not None


def test_a_busy_phone_is_a_retryable_failure(tmp_path, sipp, provider, delivery, kamailio):
    busy = sipp("uas_busy.xml", port=kamailio.trunk_port)
    with pytest.raises(ProviderError) as caught:
        send(provider, delivery)
    assert caught.value.retryable and caught.value.code == "busy"
    assert busy.wait(10) == 0, busy.report()


def test_an_unknown_user_is_a_permanent_failure(provider, delivery):
    message = Message(delivery_id=delivery, channel=Channel.VOICE, to="nobody-here",
                      body="", language="nl")
    with pytest.raises(ProviderError) as caught:
        asyncio.run(provider.send(message))
    assert not caught.value.retryable and caught.value.provider_code == "404"


def test_the_runtime_s_sip_provider_ends_the_call_as_the_webhook_ends_a_twilio_call(
        tmp_path, sipp, kamailio, delivery, meldkamer_port, sip_sessions, renderer,
        redis_server: EmbeddedRedis) -> None:
    """VOICE_PROVIDER=sip as a worker builds it: when the conversation ends, the one end of
    a call (`end_call`) moves the delivery on and frees the trunk's line, whether the batch
    recorded the call before that or after."""
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "sounds").symlink_to(renderer.cache_dir)  # rendered once per run
    low = random.randrange(20000, 40000, 50)  # as the endpoint fixture picks its range
    runtime = build_runtime(Settings.from_env({
        "BURGERNET_HOME": str(tmp_path), "SECRET_KEY": "k",
        "DATABASE_URL": sip_sessions.kw["bind"].url.render_as_string(hide_password=False),
        "REDIS_URL": redis_server.url, "MELDKAMER_CONFIG": str(MELDKAMER_CONFIG),
        "TTS": "espeak", "VOICE_PROVIDER": "sip", "VOICE_MAX_CONCURRENT": "1",
        "SIP_PROXY": f"{kamailio.host}:{kamailio.port}", "SIP_OUT_USERNAME": "burgernet-out",
        "SIP_RTP_PORTS": f"{low}-{low + 40}", "DIAL_TIMEOUT": "10"}))
    connection = runtime.redis_for("the test")
    connection.flushdb()
    phone = sipp(str(participant_scenario(tmp_path, "1")), port=kamailio.trunk_port,
                 timeout=90)
    meldkamer = sipp("uas_answer_then_bye.xml", port=meldkamer_port, timeout=90)
    provider = runtime.provider(Channel.VOICE)
    assert isinstance(provider, SipVoiceProvider)
    try:
        assert runtime.call_slots.acquire(call_token(delivery))  # as the batch does
        call_id = send(provider, delivery)
        with sip_sessions() as session:  # the batch records the call, then applies any end
            session.get(Delivery, delivery).provider_id = call_id  # that came before it
            session.get(Delivery, delivery).status = DeliveryStatus.SENT
            session.commit()
            apply_early(session, connection, [call_id], datetime.now(UTC))
            session.commit()
        assert provider.wait_idle(60)
        assert phone.wait(10) == 0, phone.report()
        assert meldkamer.wait(10) == 0, meldkamer.report()
    finally:
        provider.endpoint.stop()
        runtime.close()
    with sip_sessions() as session:
        assert session.get(Delivery, delivery).status == DeliveryStatus.ANSWERED
        record = session.scalar(select(CallRecord).where(CallRecord.provider_call_id == call_id))
        assert record.ended_at is not None and record.outcome == "connected"
    assert runtime.call_slots.busy() == 0
