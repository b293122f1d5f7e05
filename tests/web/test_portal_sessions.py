"""A participant's portal session opens that participant's account and no other: not the
account that later gets the same row id, not after logging out, not from a saved cookie."""

from __future__ import annotations

from dataclasses import replace

import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from core.models import Action, Channel, Delivery, Participant, ParticipantStatus
from core.participants import forget
from core.settings import Settings
from outbound.runtime import Runtime
from tests.web import test_portal, test_reaction
from tests.web.test_portal import (
    E164,
    OTHER_E164,
    Sms,
    _forget_resend_wait,
    _join,
    _page,
    _participant,
    _post,
)
from tests.web.test_reaction import _delivery, _path
from web import create_app

sms = test_portal.sms
inquiry = test_reaction.inquiry


def _cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def _replay(app: Flask, cookie: str) -> FlaskClient:
    """A new browser that presents COOKIE, as an attacker who kept a copy would."""
    other = app.test_client()
    other.set_cookie("session", cookie)
    return other


def test_a_cookie_kept_from_before_delete_my_data_opens_no_later_account(
        app: Flask, client: FlaskClient, sms: Sms, db: Session) -> None:
    _join(client, sms)
    old_id = _participant(db).id
    kept = _cookie(client)
    assert _post(client, "/deelnemen/mijn/verwijderen", {"confirm": "y"}).status_code == 302
    # whoever signs up next, even on the very same row id (as SQLite did before AUTOINCREMENT)
    db.add(Participant(id=old_id, phone=OTHER_E164, status=ParticipantStatus.VERIFIED))
    db.commit()
    response = _replay(app, kept).get("/deelnemen/mijn")
    assert response.status_code == 302 and response.headers["Location"] == "/deelnemen/inloggen"
    assert "06 87654321" not in _page(_replay(app, kept).get("/deelnemen/mijn",
                                                             follow_redirects=True))


def test_logging_out_ends_every_portal_session_of_the_participant(
        app: Flask, client: FlaskClient, sms: Sms, db: Session) -> None:
    _join(client, sms)
    kept = _cookie(client)
    elsewhere = _replay(app, kept)  # a second browser of the same participant, or a thief
    assert elsewhere.get("/deelnemen/mijn").status_code == 200
    _post(client, "/deelnemen/uitloggen", form_page="/deelnemen/mijn")
    assert _replay(app, kept).get("/deelnemen/mijn").status_code == 302
    assert elsewhere.get("/deelnemen/mijn").status_code == 302
    assert _participant(db).session_key is None


def test_logging_in_again_after_logging_out_works(client: FlaskClient, sms: Sms, db: Session,
                                                   redis_client: redis.Redis) -> None:
    _join(client, sms)
    _post(client, "/deelnemen/uitloggen", form_page="/deelnemen/mijn")
    _forget_resend_wait(redis_client, db)
    assert _post(client, "/deelnemen/inloggen", {"phone": "06 12345678"}).status_code == 302
    response = _post(client, "/deelnemen/code", {"code": sms.code(E164)})
    assert response.headers["Location"] == "/deelnemen/mijn"
    assert client.get("/deelnemen/mijn").status_code == 200


def test_a_reaction_link_of_deleted_data_opens_no_one_else_s_question(
        client: FlaskClient, db: Session, inquiry: Action) -> None:
    """The personal link names a delivery id: a later message must never get that id."""
    mine = _delivery(db, inquiry)
    link = _path(mine)
    forget(db, db.get(Participant, mine.participant_id))
    db.commit()
    theirs = _delivery(db, inquiry)
    assert theirs.id != mine.id
    assert db.scalar(select(Delivery.channel).where(Delivery.id == theirs.id)) == Channel.EMAIL
    response = client.get(link)
    assert response.status_code != 200 and 'id="reaction-text"' not in _page(response)


def test_the_portal_timeouts_are_settings(settings: Settings, engine: Engine,
                                          sessions: sessionmaker[Session],
                                          redis_client: redis.Redis, sms: Sms) -> None:
    short = replace(settings, portal_idle_minutes=5, portal_session_hours=1)
    client = create_app(runtime=Runtime(short, engine, sessions, redis_client)).test_client()
    _join(client, sms)
    with client.session_transaction() as session:
        session["participant_seen"] -= 4 * 60
    assert client.get("/deelnemen/mijn").status_code == 200
    with client.session_transaction() as session:
        session["participant_seen"] -= 6 * 60
    assert client.get("/deelnemen/mijn").status_code == 302
    with sessions() as db:
        _forget_resend_wait(redis_client, db)
    assert _post(client, "/deelnemen/inloggen", {"phone": "06 12345678"}).status_code == 302
    assert _post(client, "/deelnemen/code", {"code": sms.code(E164)}).status_code == 302
    with client.session_transaction() as session:
        session["participant_since"] -= 61 * 60
    assert client.get("/deelnemen/mijn").status_code == 302
