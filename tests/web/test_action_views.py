"""What the console and the municipal pages answer when the action service refuses a change
(web.action_views): the same mapping for both, each page in its own words."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.models import (
    Action,
    ActionStatus,
    AuditEvent,
    Channel,
    OrganisationKind,
    User,
)
from core.permissions import KIND_REFUSED
from tests.web.helpers import DEMO_EMAIL, csrf_token, login_as
from tests.web.test_console import action_form
from tests.web.test_municipal import form_data, participant

CONSOLE_NEW = "/console/actions/new"
MUNICIPAL_NEW = "/gemeente/buurtonderzoek/nieuw"


def console_draft(client: FlaskClient) -> str:
    """A centralist's new draft; the path of its page."""
    data = {**action_form(), "csrf_token": csrf_token(client, CONSOLE_NEW)}
    response = client.post(CONSOLE_NEW, data=data, content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"]


def municipal_draft(client: FlaskClient) -> str:
    """An officer's new neighbourhood inquiry; the path of its page."""
    response = client.post(MUNICIPAL_NEW, data=form_data(client, MUNICIPAL_NEW))
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"].rstrip("/")


#: Per page: its role, how it makes a draft, a page with a CSRF token, and its verbs.
PAGES = {"console": ("centralist", console_draft, CONSOLE_NEW,
                     {"start": "start", "end": "end"}),
         "municipal": ("municipality_officer", municipal_draft, MUNICIPAL_NEW,
                       {"start": "versturen", "end": "sluiten", "update": "vervolg",
                        "discard": "verwijderen"})}


class Staff:
    """A logged-in staff member on one of the two pages, with its drafts and its changes."""

    def __init__(self, client: FlaskClient, page: str) -> None:
        role, self._draft, self._token_page, self._verbs = PAGES[page]
        self.client = login_as(client, role)
        self.email = DEMO_EMAIL[role]

    def draft(self) -> str:
        return self._draft(self.client)

    def started(self) -> str:
        path = self.draft()
        assert self.change(path, "start").status_code == 302
        self.flashes()
        return path

    def change(self, path: str, verb: str, **data: str):
        token = csrf_token(self.client, self._token_page)
        return self.client.post(f"{path}/{self._verbs[verb]}",
                                data={"csrf_token": token, **data})

    def flashes(self) -> list[list[str]]:
        with self.client.session_transaction() as session:
            return [list(flashed) for flashed in session.pop("_flashes", [])]


@pytest.fixture
def neighbours(db: Session) -> None:
    """People in the area on every channel the two pages use, so each change queues work."""
    for channels in ((Channel.SMS,), (Channel.EMAIL,), (Channel.SMS, Channel.EMAIL)):
        participant(db, channels=channels)


def refused_count(db: Session) -> int:
    return db.scalar(select(func.count(AuditEvent.id))
                     .where(AuditEvent.verb == "forbidden")) or 0


def organisation_kind(db: Session, email: str, kind: OrganisationKind) -> None:
    """Make EMAIL's organisation of KIND (as an administrator's change of it would)."""
    user = db.scalar(select(User).where(User.email == email))
    assert user is not None
    user.organisation.kind = kind
    db.commit()


@pytest.mark.parametrize(("page", "verb", "said"), [
    ("console", "start", "Er is geen wachtrij (Redis) ingesteld; de actie kan nu niet starten."),
    ("municipal", "start",
     "Er is geen wachtrij (Redis) ingesteld; er kan nu niets worden verstuurd."),
])
def test_without_a_queue_a_start_says_so_and_leaves_the_draft(app: Flask, client: FlaskClient,
                                                              db: Session, page: str,
                                                              verb: str, said: str) -> None:
    staff = Staff(client, page)
    path = staff.draft()
    staff.flashes()
    app.extensions["runtime"].redis = None
    response = staff.change(path, verb)
    assert (response.status_code, response.headers["Location"]) == (302, path)
    assert staff.flashes() == [["error", said]]
    action_id = int(path.rsplit("/", 1)[1])
    assert db.scalar(select(Action.status).where(Action.id == action_id)) == ActionStatus.DRAFT


def test_without_a_queue_the_console_shows_the_end_form_again(app: Flask,
                                                              client: FlaskClient) -> None:
    staff = Staff(client, "console")
    path = staff.started()
    app.extensions["runtime"].redis = None
    response = staff.change(path, "end", outcome="found", text="Gevonden")
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and 'id="outcome-error"' in page
    assert "Er is geen wachtrij (Redis) ingesteld; beëindigen kan nu niet." in page
    assert "Gevonden</textarea>" in page


@pytest.mark.parametrize(("page", "verb", "data", "said"), [
    ("console", "end", {"outcome": "found"},
     "De actie is beëindigd, maar de wachtrij was niet bereikbaar. De worker verstuurt de "
     "uitslag alsnog binnen enkele minuten."),
    ("municipal", "end", {},
     "Het buurtonderzoek is gesloten, maar de wachtrij was niet bereikbaar. De worker rondt "
     "het alsnog af binnen enkele minuten."),
    ("municipal", "update", {"update_nl": "Dank voor uw hulp."},
     "Het vervolgbericht is opgeslagen, maar de wachtrij was niet bereikbaar. De worker "
     "verstuurt het alsnog binnen enkele minuten."),
])
def test_a_queue_that_does_not_answer_is_said_after_the_change_is_stored(
        client: FlaskClient, neighbours: None, monkeypatch: pytest.MonkeyPatch, page: str,
        verb: str, data: dict[str, str], said: str) -> None:
    staff = Staff(client, page)
    path = staff.started()

    def down(*_args: object, **_kwargs: object) -> None:
        raise redis.ConnectionError("the queue is down")

    monkeypatch.setattr("outbound.actions.enqueue", down)
    monkeypatch.setattr("outbound.inquiry.enqueue", down)
    response = staff.change(path, verb, **data)
    assert (response.status_code, response.headers["Location"]) == (302, path)
    assert staff.flashes() == [["error", said]]


@pytest.mark.parametrize(("page", "verb", "started"), [
    ("console", "start", False), ("municipal", "start", False),
    ("municipal", "discard", False), ("municipal", "end", True),
    ("municipal", "update", True),
])
def test_a_refusal_of_the_rules_is_audited_and_its_reason_flashed(
        client: FlaskClient, db: Session, page: str, verb: str, started: bool) -> None:
    staff = Staff(client, page)
    path = staff.started() if started else staff.draft()
    staff.flashes()
    before = refused_count(db)
    organisation_kind(db, staff.email, OrganisationKind.FIRE)
    response = staff.change(path, verb, update_nl="Dank voor uw hulp.")
    assert (response.status_code, response.headers["Location"]) == (302, path)
    assert staff.flashes() == [["error", KIND_REFUSED]]
    assert refused_count(db) == before + 1


def test_a_refused_end_on_the_console_shows_the_end_form_again(client: FlaskClient,
                                                               db: Session) -> None:
    staff = Staff(client, "console")
    path = staff.started()
    before = refused_count(db)
    organisation_kind(db, staff.email, OrganisationKind.FIRE)
    response = staff.change(path, "end", outcome="found")
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and 'id="end-form"' in page
    assert f'id="end-error-kind" role="alert">{escape(KIND_REFUSED)}</p>' in page
    assert refused_count(db) == before + 1 and staff.flashes() == []


@pytest.mark.parametrize(("page", "verb", "make", "said"), [
    ("console", "end", Staff.draft,
     "Een concept kan niet worden beëindigd; het is nog niet gestart."),
    ("municipal", "end", Staff.draft,
     "Een concept is nog niet verstuurd en hoeft niet te worden gesloten."),
    ("municipal", "discard", Staff.started, "Alleen een concept kan worden verwijderd."),
])
def test_a_change_the_action_is_not_ready_for_is_refused_in_the_pages_words(
        client: FlaskClient, page: str, verb: str, make: Callable[[Staff], str],
        said: str) -> None:
    staff = Staff(client, page)
    path = make(staff)
    staff.flashes()
    response = staff.change(path, verb, outcome="found")
    assert (response.status_code, response.headers["Location"]) == (302, path)
    assert staff.flashes() == [["error", said]]
