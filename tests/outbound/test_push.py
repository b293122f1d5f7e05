"""App push through Web Push, against a local push service that checks VAPID and decrypts
(fakes.push), through the real worker path."""

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.egress import Egress
from core.errors import ConfigError
from core.models import (
    AuditEvent,
    Channel,
    Delivery,
    DeliveryStatus,
    Language,
    LocationKind,
    Outcome,
    Participant,
    ParticipantLocation,
    ParticipantStatus,
    PushSubscription,
    channel_mask,
)
from core.participants import RegistrationError
from core.push import (
    MAX_PUSH_SUBSCRIPTIONS,
    PushTarget,
    active_push_targets,
    add_push_subscription,
    remove_push_subscription,
)
from core.redis_server import free_port
from core.settings import Settings
from fakes.dns import StaticResolver
from fakes.loopback import LoopbackServer
from fakes.push import FakePushServer, Subscription, decrypt
from outbound.cli import push_command
from outbound.fanout import start_action
from outbound.feedback import end_action
from outbound.providers import Message, ProviderError
from outbound.providers.webpush import (
    MAX_PLAINTEXT,
    WebPushProvider,
    application_server_key,
    database_report,
    generate_vapid_key,
)
from outbound.queues import enqueue, schedule
from outbound.runtime import build_runtime
from tests.outbound.conftest import NOW, UTRECHT

SUBJECT = "mailto:beheer@burgernet.example"
#: The local fake push service lives on 127.0.0.1 over http: only this test-only allowance
#: lets a subscription or a push reach it.
LOCAL_FAKE = Egress((), test_only_allow_loopback=True)
_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def vapid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def push_server() -> Iterator[FakePushServer]:
    with FakePushServer() as server:
        yield server


@pytest.fixture
def pushing(runtime, sessions, vapid_key, push_server):
    """The runtime's push channel on the Web Push provider, as build_runtime wires it."""
    report = database_report(sessions)
    runtime.providers[Channel.PUSH] = lambda: WebPushProvider(
        vapid_key, SUBJECT, public_url="https://burgernet.example", report=report,
        egress=LOCAL_FAKE)
    return push_server.fake


@pytest.fixture
def subscriber(db: Session, push_server, vapid_key):
    """A verified push-only participant in Utrecht whose browsers subscribe at the fake."""

    def make(devices: int = 1, language: Language = Language.NL
             ) -> tuple[Participant, list[Subscription]]:
        participant = Participant(phone=f"+3169{next(_numbers) + 8_000_000:07d}",
                                  status=ParticipantStatus.VERIFIED, language=language,
                                  channels=channel_mask({Channel.PUSH}), quiet_hours={})
        participant.locations.append(ParticipantLocation(kind=LocationKind.HOME,
                                                         lat=UTRECHT[0], lon=UTRECHT[1]))
        db.add(participant)
        db.flush()
        browsers = [push_server.fake.subscribe(application_server_key(vapid_key))
                    for _ in range(devices)]
        for browser in browsers:
            add_push_subscription(db, participant, browser.info(), NOW,
                                  egress=LOCAL_FAKE, label="Firefox")
        db.commit()
        return participant, browsers

    return make


def _alert(db: Session, sessions, runtime, work, make_action, **kwargs):
    action = make_action(radius_m=500, **kwargs)
    result = start_action(sessions, action.id, now=NOW)
    db.commit()
    enqueue(runtime.redis, result.batches)
    work()
    return action, result


def _push_delivery(db: Session, action, participant: Participant) -> Delivery:
    return db.scalar(select(Delivery).where(Delivery.action_id == action.id,
                                            Delivery.participant_id == participant.id,
                                            Delivery.channel == Channel.PUSH))


def _again(db: Session, runtime, work, delivery: Delivery) -> None:
    """Skip the backoff: queue DELIVERY's job now and run it."""
    delivery.next_attempt_at = None
    db.commit()
    schedule(runtime.redis, db, [delivery.id])
    work()
    db.refresh(delivery)


# --- through the worker -----------------------------------------------------------------

def test_an_urgent_alert_reaches_every_device_decrypted_in_their_language(
        db: Session, sessions, runtime, work, make_action, pushing, subscriber,
        vapid_key) -> None:
    dutch, (phone, laptop) = subscriber(devices=2)
    english, (tablet,) = subscriber(language=Language.EN)
    action, _ = _alert(db, sessions, runtime, work, make_action)

    for participant in (dutch, english):
        delivery = _push_delivery(db, action, participant)
        assert delivery.status == DeliveryStatus.SENT and delivery.provider == "webpush"
    assert len(pushing.records) == 3 and not pushing.refused
    for browser, language, title in ((phone, "nl", "Man in rode jas"),
                                     (laptop, "nl", "Man in rode jas"),
                                     (tablet, "en", "Man in red coat")):
        [record] = pushing.received(browser)
        note = record.json
        assert note["lang"] == language and title in note["title"] and title in note["body"]
        assert note["action_id"] == action.id
        assert note["url"] == f"https://burgernet.example/actions/{action.id}"
        assert ("Gezien? Bel gratis" if language == "nl" else "Seen anything?") in note["body"]
        assert record.urgency == "high" and record.ttl == 3600
        assert record.topic == f"burgernet-action-{action.id}"
        assert record.vapid_key == application_server_key(vapid_key)
        assert record.claims["aud"] == pushing.base_url and record.claims["sub"] == SUBJECT
    assert _push_delivery(db, action, english).provider_id == pushing.received(tablet)[0].id
    subscriptions = db.scalars(select(PushSubscription).where(
        PushSubscription.participant_id.in_([dutch.id, english.id]))).all()
    assert all(s.last_success_at is not None and s.failures == 0 for s in subscriptions)


def test_a_result_is_not_urgent_and_keeps_a_day(db: Session, sessions, runtime, work,
                                                make_action, pushing, subscriber) -> None:
    participant, (browser,) = subscriber()
    action, _ = _alert(db, sessions, runtime, work, make_action)
    ending = end_action(db, action.id, Outcome.FOUND, None, now=NOW)
    db.commit()
    enqueue(runtime.redis, ending.batches)
    work()
    alert, result = pushing.received(browser)
    assert result.urgency == "normal" and result.ttl == 24 * 3600
    assert "gevonden" in result.json["body"] and result.json["priority"] == "result"
    assert result.topic == alert.topic  # a result replaces an alert the phone never got


def test_a_gone_subscription_is_disabled_and_the_delivery_fails_for_good(
        db: Session, sessions, runtime, work, make_action, pushing, subscriber) -> None:
    participant, (browser,) = subscriber()
    browser.gone = True
    action, _ = _alert(db, sessions, runtime, work, make_action)

    delivery = _push_delivery(db, action, participant)
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 1
    assert delivery.provider_error.startswith("subscription_gone (410)")
    subscription = db.scalar(select(PushSubscription).where(
        PushSubscription.participant_id == participant.id))
    db.refresh(subscription)
    assert subscription.disabled_at is not None and subscription.failures == 1
    assert db.scalar(select(AuditEvent).where(AuditEvent.verb == "push_subscription_gone",
                                              AuditEvent.object_id == str(participant.id)))
    assert active_push_targets(db, [participant.id]) == {}

    second, _ = _alert(db, sessions, runtime, work, make_action)
    again = _push_delivery(db, second, participant)
    assert again.status == DeliveryStatus.FAILED
    assert again.provider_error.startswith("no_subscription")


def test_one_gone_device_of_two_does_not_fail_the_delivery(
        db: Session, sessions, runtime, work, make_action, pushing, subscriber) -> None:
    participant, (old, new) = subscriber(devices=2)
    old.gone = True
    action, _ = _alert(db, sessions, runtime, work, make_action)
    assert _push_delivery(db, action, participant).status == DeliveryStatus.SENT
    assert [t.endpoint for t in active_push_targets(db, [participant.id])[participant.id]] == [
        new.endpoint]


def test_throttling_and_server_errors_are_retried(db: Session, sessions, runtime, work,
                                                  make_action, pushing, subscriber,
                                                  steady_backoff) -> None:
    participant, (browser,) = subscriber()
    pushing.behaviour.fail_next = [429, 500]
    action, _ = _alert(db, sessions, runtime, work, make_action)
    delivery = _push_delivery(db, action, participant)
    assert delivery.status == DeliveryStatus.QUEUED and delivery.next_attempt_at is not None
    assert delivery.provider_error.startswith("http_429")
    _again(db, runtime, work, delivery)
    assert delivery.status == DeliveryStatus.QUEUED
    assert delivery.provider_error.startswith("http_500")
    _again(db, runtime, work, delivery)
    assert delivery.status == DeliveryStatus.SENT and delivery.attempts == 3
    assert len(pushing.received(browser)) == 1
    assert [status for status, _ in pushing.refused] == [429, 500]


def test_push_without_a_subscription_fails_with_a_clear_code(
        db: Session, sessions, runtime, work, make_action, pushing, subscriber) -> None:
    participant, _ = subscriber(devices=0)
    action, _ = _alert(db, sessions, runtime, work, make_action)
    delivery = _push_delivery(db, action, participant)
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 1
    assert delivery.provider_error.startswith("no_subscription")
    assert not pushing.records


# --- the provider on its own ------------------------------------------------------------

def _target(browser: Subscription, subscription_id: int = 1) -> PushTarget:
    info = browser.info()
    return PushTarget(subscription_id, info["endpoint"], info["keys"]["p256dh"],
                      info["keys"]["auth"])


def _send(provider: WebPushProvider, *targets: PushTarget, body: str = "Tekst.",
          priority: str = "urgent") -> str:
    async def go() -> str:
        try:
            return await provider.send(Message(1, Channel.PUSH, "1", body, "nl",
                                               subject="Burgernet: test", action_id=5,
                                               priority=priority, push=targets))
        finally:
            await provider.close()

    return asyncio.run(go())


@pytest.mark.parametrize(("status", "retryable", "code"), [
    (410, False, "subscription_gone"),
    (404, False, "subscription_gone"),
    (413, False, "http_413"),
    (400, False, "http_400"),
    (429, True, "http_429"),
    (503, True, "http_503"),
])
def test_answers_say_whether_to_retry(push_server, vapid_key, status, retryable,
                                      code) -> None:
    reports = []
    provider = WebPushProvider(vapid_key, SUBJECT, report=lambda *a: reports.append(a),
                               egress=LOCAL_FAKE)
    push_server.fake.behaviour.fail_next = [status]
    with pytest.raises(ProviderError) as caught:
        _send(provider, _target(push_server.fake.subscribe(), 7))
    assert caught.value.retryable is retryable and caught.value.code == code
    gone = code == "subscription_gone"
    assert reports == [(set(), set() if gone else {7}, {7} if gone else set())]


def test_an_unreachable_push_service_is_worth_a_retry(vapid_key) -> None:
    browser = ec.generate_private_key(ec.SECP256R1())
    target = PushTarget(1, f"http://127.0.0.1:{free_port()}/push/x",
                        application_server_key(browser), "e0Vh2b3PJj2S4oF_T7XQ3A")
    with pytest.raises(ProviderError) as caught:
        _send(WebPushProvider(vapid_key, SUBJECT, egress=LOCAL_FAKE), target)
    assert caught.value.retryable and caught.value.code == "network"


def test_a_push_to_this_machine_is_never_posted_without_the_test_allowance(
        push_server, vapid_key) -> None:
    browser = push_server.fake.subscribe()  # as if stored before endpoints were checked
    with pytest.raises(ProviderError) as caught:
        _send(WebPushProvider(vapid_key, SUBJECT), _target(browser))
    assert caught.value.code == "endpoint_refused" and not caught.value.retryable
    assert not push_server.fake.records and not push_server.fake.refused


@pytest.mark.parametrize("addresses", [
    ["127.0.0.1"], ["::1"], ["10.0.0.7"], ["192.168.1.20"], ["172.16.5.4"], ["169.254.169.254"],
    ["fd00::1"], ["fe80::1"], ["100.64.0.1"], ["::ffff:127.0.0.1"], ["0.0.0.0"],
    ["64:ff9b::a00:7"], ["8.8.8.8", "10.0.0.7"]])
def test_a_push_service_name_that_resolves_inside_is_refused_when_sending(
        vapid_key, addresses) -> None:
    resolver = StaticResolver({"fcm.googleapis.com": addresses})
    target = PushTarget(1, "https://fcm.googleapis.com/fcm/send/x",
                        application_server_key(ec.generate_private_key(ec.SECP256R1())),
                        "e0Vh2b3PJj2S4oF_T7XQ3A")
    with pytest.raises(ProviderError) as caught:
        _send(WebPushProvider(vapid_key, SUBJECT, resolver=resolver), target)
    assert caught.value.code == "endpoint_refused" and not caught.value.retryable
    assert resolver.asked == ["fcm.googleapis.com"]  # resolved at send time, then refused


class Redirector(LoopbackServer):
    """A 'push service' that answers every POST with a 307 to TARGET."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target, self.hits = target, 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.answer)
        return app

    async def answer(self, _request: web.Request) -> web.Response:
        self.hits += 1
        raise web.HTTPTemporaryRedirect(self.target)


def test_a_redirect_from_a_push_service_is_not_followed(push_server, vapid_key) -> None:
    browser = push_server.fake.subscribe()
    with Redirector(browser.endpoint) as redirector:
        target = _target(browser)._replace(endpoint=f"{redirector.url}/push/{browser.id}")
        with pytest.raises(ProviderError) as caught:
            _send(WebPushProvider(vapid_key, SUBJECT, egress=LOCAL_FAKE), target)
    assert caught.value.code == "http_307" and not caught.value.retryable
    assert redirector.hits == 1
    assert not push_server.fake.records and not push_server.fake.refused


def test_a_foreign_vapid_key_is_refused_by_a_bound_subscription(push_server,
                                                                vapid_key) -> None:
    bound = push_server.fake.subscribe(application_server_key(ec.generate_private_key(
        ec.SECP256R1())))
    with pytest.raises(ProviderError) as caught:
        _send(WebPushProvider(vapid_key, SUBJECT, egress=LOCAL_FAKE), _target(bound))
    assert caught.value.code == "http_403" and not caught.value.retryable


def test_a_long_text_is_shortened_to_fit_one_record(push_server, vapid_key) -> None:
    browser = push_server.fake.subscribe()
    _send(WebPushProvider(vapid_key, SUBJECT, egress=LOCAL_FAKE), _target(browser),
          body="Zoë ziet € " * 900)
    [record] = push_server.fake.received(browser)
    assert len(record.payload) <= MAX_PLAINTEXT and record.json["body"].endswith("…")


def test_the_fake_refuses_what_it_cannot_decrypt(push_server, vapid_key) -> None:
    browser = push_server.fake.subscribe()
    other = push_server.fake.subscribe()
    wrong = _target(browser)._replace(auth=other.info()["keys"]["auth"])
    with pytest.raises(ProviderError) as caught:
        _send(WebPushProvider(vapid_key, SUBJECT, egress=LOCAL_FAKE), wrong)
    assert caught.value.code == "http_400" and "decrypt" in str(caught.value)
    with pytest.raises(ValueError, match="aes128gcm header"):
        decrypt(b"short", ec.generate_private_key(ec.SECP256R1()), b"0" * 16)


# --- subscriptions ----------------------------------------------------------------------

def _info(endpoint: str = "https://fcm.googleapis.com/wpush/v2/abc", **keys: str) -> dict:
    browser = ec.generate_private_key(ec.SECP256R1())
    return {"endpoint": endpoint, "expirationTime": None,
            "keys": {"p256dh": application_server_key(browser),
                     "auth": "e0Vh2b3PJj2S4oF_T7XQ3A", **keys}}


@pytest.fixture
def person(db: Session) -> Participant:
    participant = Participant(phone=f"+3169{next(_numbers) + 9_000_000:07d}",
                              status=ParticipantStatus.VERIFIED, quiet_hours={})
    db.add(participant)
    db.flush()
    return participant


@pytest.mark.parametrize(("subscription", "message"), [
    (_info("http://fcm.googleapis.com/x"), "must be an https:// URL"),
    (_info("ftp://fcm.googleapis.com/x"), "must be an https:// URL"),
    (_info("https://user:pw@fcm.googleapis.com/x"), "no login"),
    (_info("https://fcm.googleapis.com/" + "x" * 1024), "longer than 1024"),
    (_info(""), "has no endpoint"),
    ({"endpoint": "https://fcm.googleapis.com/x"}, "has no keys"),
    (_info(p256dh="BAAA"), "p256dh key has 3 bytes, not 65"),
    (_info(p256dh="B" + "A" * 86), "not an uncompressed P-256 public key"),
    (_info(p256dh="not base64!"), "p256dh key is not base64url"),
    (_info(auth="AAAA"), "auth key has 3 bytes, not 16"),
    (_info(auth=""), "no auth key"),
    ("https://fcm.googleapis.com/x", "an object with endpoint and keys"),
])
def test_a_bad_subscription_is_refused_clearly(db: Session, person, subscription,
                                               message) -> None:
    with pytest.raises(RegistrationError, match=message):
        add_push_subscription(db, person, subscription, NOW)


@pytest.mark.parametrize(("endpoint", "message"), [
    ("https://push.example.net/send/x", "not a known host"),
    ("https://fcm.googleapis.com.evil.example/x", "not a known host"),
    ("https://evilfcm.googleapis.com/x", "not a known host"),
    ("https://notify.windows.com/x", "not a known host"),
    ("https://localhost/push", "not a known host"),
    ("https://127.0.0.1/push", "not a public address"),
    ("https://[::1]/push", "not a public address"),
    ("https://10.0.0.7/push", "not a public address"),
    ("https://169.254.169.254/latest/meta-data", "not a public address"),
    ("https://[::ffff:192.168.1.1]/push", "not a public address"),
    ("http://127.0.0.1:8710/push/a", "https"),
])
def test_an_endpoint_off_the_browsers_push_services_is_refused(db: Session, person, endpoint,
                                                               message) -> None:
    with pytest.raises(RegistrationError, match=message):
        add_push_subscription(db, person, _info(endpoint), NOW)
    assert db.scalar(select(PushSubscription)) is None


@pytest.mark.parametrize("endpoint", [
    "https://fcm.googleapis.com/fcm/send/abc",
    "https://updates.push.services.mozilla.com/wpush/v2/a",
    "https://wns2-par02p.notify.windows.com/w/?token=abc", "https://web.push.apple.com/QGu1"])
def test_the_browsers_push_services_are_accepted(db: Session, person, endpoint) -> None:
    assert add_push_subscription(db, person, _info(endpoint), NOW).endpoint == endpoint


def test_the_test_only_allowance_opens_loopback_and_nothing_else(db: Session, person) -> None:
    add_push_subscription(db, person, _info("http://127.0.0.1:8710/push/a"), NOW,
                          egress=LOCAL_FAKE)
    for endpoint in ("http://fcm.googleapis.com/a", "https://10.0.0.7/a",
                     "https://169.254.169.254/a", "https://push.example.net/a"):
        with pytest.raises(RegistrationError):
            add_push_subscription(db, person, _info(endpoint), NOW, egress=LOCAL_FAKE)


def test_subscribing_twice_is_one_subscription_enabled_again(db: Session, person) -> None:
    info = _info()
    first = add_push_subscription(db, person, info, NOW)
    first.disabled_at, first.failures = NOW, 3
    padded = {**info, "keys": {k: v + "=" * (-len(v) % 4) for k, v in info["keys"].items()}}
    again = add_push_subscription(db, person, padded, NOW, label="Chrome op Android")
    assert again.id == first.id and again.disabled_at is None and again.failures == 0
    assert again.p256dh == info["keys"]["p256dh"] and again.label == "Chrome op Android"
    events = db.scalars(select(AuditEvent).where(AuditEvent.verb == "add_push_subscription",
                                                 AuditEvent.object_id == str(person.id))
                        .order_by(AuditEvent.id)).all()
    assert len(events) == 2 and events[0].details["service"] == "fcm.googleapis.com"


def test_a_subscription_moves_with_its_browser(db: Session, person) -> None:
    other = Participant(phone="+31690009999", status=ParticipantStatus.VERIFIED, quiet_hours={})
    db.add(other)
    db.flush()
    info = _info()
    add_push_subscription(db, other, info, NOW)
    moved = add_push_subscription(db, person, info, NOW)
    assert moved.participant_id == person.id
    assert active_push_targets(db, [other.id]) == {}
    event = db.scalars(select(AuditEvent).where(AuditEvent.verb == "add_push_subscription")
                       .order_by(AuditEvent.id.desc())).first()
    assert event.details["moved_from"] == other.id


def test_at_most_ten_devices_and_removing_one_makes_room(db: Session, person) -> None:
    infos = [_info(f"https://fcm.googleapis.com/{n}") for n in range(MAX_PUSH_SUBSCRIPTIONS)]
    for info in infos:
        add_push_subscription(db, person, info, NOW)
    with pytest.raises(RegistrationError, match="at most 10 devices"):
        add_push_subscription(db, person, _info("https://fcm.googleapis.com/11"), NOW)
    assert remove_push_subscription(db, person, infos[0]["endpoint"]) is True
    assert remove_push_subscription(db, person, infos[0]["endpoint"]) is False
    add_push_subscription(db, person, _info("https://fcm.googleapis.com/11"), NOW)
    assert len(active_push_targets(db, [person.id])[person.id]) == MAX_PUSH_SUBSCRIPTIONS
    assert db.scalar(select(AuditEvent).where(AuditEvent.verb == "remove_push_subscription"))


def test_subscriptions_go_with_their_participant(db: Session, person) -> None:
    add_push_subscription(db, person, _info(), NOW)
    db.delete(person)
    db.flush()
    assert db.scalar(select(PushSubscription)) is None


# --- settings and keys ------------------------------------------------------------------

def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"BURGERNET_HOME": str(tmp_path), "SECRET_KEY": "x", "PUSH_PROVIDER": "webpush",
            "VAPID_SUBJECT": SUBJECT, **extra}


def test_webpush_without_a_usable_key_does_not_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist; create a key pair with"):
        Settings.from_env(_env(tmp_path))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    with pytest.raises(ConfigError, match="not an unencrypted PEM private key"):
        Settings.from_env(_env(tmp_path, VAPID_PRIVATE_KEY=str(garbage)))
    rsa = tmp_path / "p384.pem"
    rsa.write_bytes(ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    with pytest.raises(ConfigError, match="not a P-256"):
        Settings.from_env(_env(tmp_path, VAPID_PRIVATE_KEY=str(rsa)))


def test_webpush_needs_a_subject_and_accepts_a_generated_key(tmp_path: Path) -> None:
    public = generate_vapid_key(tmp_path / "var" / "vapid_private.pem")
    assert (tmp_path / "var" / "vapid_private.pem").stat().st_mode & 0o777 == 0o600
    with pytest.raises(ConfigError, match="VAPID_SUBJECT"):
        Settings.from_env(_env(tmp_path, VAPID_SUBJECT="beheer@example.org"))
    settings = Settings.from_env(_env(tmp_path, VAPID_SUBJECT="https://burgernet.example/c"))
    assert settings.push_provider == "webpush"
    assert application_server_key(settings.vapid_private_key) == public
    assert Settings.from_env({"BURGERNET_HOME": str(tmp_path),
                              "SECRET_KEY": "x"}).push_provider == "console"


def test_keygen_writes_a_key_once(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"BURGERNET_HOME": str(tmp_path), "VAPID_PRIVATE_KEY": "keys/vapid.pem"}
    made = runner.invoke(push_command, ["keygen"], env=env)
    assert made.exit_code == 0, made.output
    public = made.stdout.strip().splitlines()[-1]
    assert application_server_key(tmp_path / "keys" / "vapid.pem") == public
    shown = runner.invoke(push_command, ["public-key"], env=env)
    assert shown.stdout.strip() == public
    again = runner.invoke(push_command, ["keygen"], env=env)
    assert again.exit_code != 0 and "use --force" in str(again.exception)


def test_build_runtime_wires_webpush(settings: Settings, tmp_path: Path) -> None:
    key = tmp_path / "vapid.pem"
    generate_vapid_key(key)
    runtime = build_runtime(replace(settings, push_provider="webpush", vapid_private_key=key,
                                    vapid_subject=SUBJECT))
    provider = runtime.providers[Channel.PUSH]()
    assert isinstance(provider, WebPushProvider) and provider.report is not None
    assert build_runtime(settings).providers[Channel.PUSH]().name == "console"
