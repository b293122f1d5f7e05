"""The audit log viewer: admins only, newest first, paged, filtered, exported."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.models import AuditEvent, User
from tests.web.helpers import login_as
from tests.web.test_stats import read_csv, tables
from web import admin


def _event(session: Session, verb: str, object_type: str, object_id: object, at: datetime,
           actor: str | None = None, user: User | None = None, **details: object) -> AuditEvent:
    event = audit.record(session, verb, object_type, object_id, actor=actor, user=user,
                         **details)
    event.at = at
    return event


@pytest.fixture
def events(app: object, sessions: sessionmaker[Session]) -> None:
    """Three days of events (Dutch time: 1, 2 and 3 March 2025), and a curious one."""
    with sessions() as session:
        officer = session.scalar(select(User).where(User.email == "gemeente@example.org"))
        base = datetime(2025, 3, 1, 10, tzinfo=UTC)
        for day in range(3):
            _event(session, "start", "action", 100 + day, base + timedelta(days=day),
                   actor="centralist@example.org")
            _event(session, "end", "action", 100 + day, base + timedelta(days=day, hours=1),
                   actor="centralist@example.org", outcome="found")
        _event(session, "create", "inquiry", 7, base + timedelta(hours=3), user=officer)
        # 23:30 UTC on 3 March is 00:30 on 4 March in the Netherlands.
        _event(session, "login_failed", "user", None, datetime(2025, 3, 3, 23, 30, tzinfo=UTC),
               actor='=HYPERLINK("http://evil.example","klik")',
               note="<script>alert(1)</script>")
        session.commit()


def rows(page: str) -> list[list[str]]:
    return tables(page)["audit-table"][1:]


@pytest.mark.parametrize("role", ["centralist", "municipality_officer"])
def test_only_admins_may_read_the_audit_log(client: FlaskClient, role: str) -> None:
    login_as(client, role)
    assert client.get("/beheer/audit").status_code == 403
    assert client.get("/beheer/audit.csv").status_code == 403


def test_the_audit_log_asks_for_a_login(client: FlaskClient) -> None:
    assert client.get("/beheer/audit").headers["Location"].startswith("/login")


def test_the_newest_event_comes_first(client: FlaskClient, events: None) -> None:
    login_as(client, "admin")
    listed = rows(client.get("/beheer/audit").get_data(as_text=True))
    assert listed[0][1:3] == ["beheer@example.org", "login"]  # the admin's own login
    assert listed[1][:3] == ["2025-03-04 00:30:00", '=HYPERLINK("http://evil.example","klik")',
                             "login_failed"]


def test_details_are_shown_as_escaped_json(client: FlaskClient, events: None) -> None:
    login_as(client, "admin")
    page = client.get("/beheer/audit?handeling=login_failed").get_data(as_text=True)
    assert "<script>alert(1)" not in page
    assert "{&#34;note&#34;: &#34;&lt;script&gt;alert(1)&lt;/script&gt;&#34;}" in page


@pytest.mark.parametrize(("query", "expected"), [
    ("wie=CENTRALIST", 6),
    ("wie=Demo+Gemeente", 1),  # the officer's name, not their e-mail address
    ("wie=100%25", 0),  # % is a character, not a wildcard
    ("handeling=end", 3),
    ("soort=action&object=101", 2),
    ("soort=inquiry", 1),
    ("van=2025-03-02&tot=2025-03-02", 2),
    ("van=2025-03-04&tot=2025-03-04", 1),  # 23:30 UTC on the 3rd is the 4th here
    ("handeling=start&van=2025-03-02", 2),
])
def test_filters_narrow_the_log(client: FlaskClient, events: None, query: str,
                                expected: int) -> None:
    login_as(client, "admin")
    page = client.get(f"/beheer/audit?{query}").get_data(as_text=True)
    listed = [row for row in rows(page) if row != ["Geen gebeurtenissen gevonden."]]
    assert len(listed) == expected, listed


def test_the_user_filter_also_finds_events_linked_by_user(client: FlaskClient,
                                                          sessions: sessionmaker[Session],
                                                          app: object) -> None:
    with sessions() as session:
        officer = session.scalar(select(User).where(User.email == "gemeente@example.org"))
        audit.record(session, "update", "inquiry", 9, user=officer, actor="api-token:7")
        session.commit()
    login_as(client, "admin")
    listed = rows(client.get("/beheer/audit?wie=demo+gemeente").get_data(as_text=True))
    assert [row[1] for row in listed] == ["api-token:7"]


@pytest.mark.parametrize(("query", "field", "message"), [
    ("van=03-01-2025", "audit-from-error",
     "Geef een datum als jjjj-mm-dd, bijvoorbeeld 2025-03-01."),
    ("tot=2025-02-30", "audit-to-error",
     "Geef een datum als jjjj-mm-dd, bijvoorbeeld 2025-03-01."),
    ("van=2025-03-02&tot=2025-03-01", "audit-to-error", "De einddatum ligt voor de begindatum."),
    ("object=" + "9" * 65, "audit-object-id-error", "Hoogstens 64 tekens."),
])
def test_wrong_filters_say_what_is_wrong_and_keep_what_was_typed(
        client: FlaskClient, query: str, field: str, message: str) -> None:
    login_as(client, "admin")
    response = client.get(f"/beheer/audit?{query}")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert re.search(rf'id="{field}"[^>]*>{re.escape(message)}</span>', page)
    for part in query.split("&"):
        assert f'value="{part.split("=")[1]}"' in page
    assert "audit-table" not in page


def test_the_log_pages_back_and_forth_without_gaps_or_repeats(
        client: FlaskClient, sessions: sessionmaker[Session], app: object) -> None:
    with sessions() as session:
        for n in range(120):
            audit.record(session, "paging", "test", n)
        session.commit()
    login_as(client, "admin")
    seen: list[str] = []
    page = client.get("/beheer/audit?soort=test").get_data(as_text=True)
    assert 'id="audit-newer"' not in page
    while True:
        listed = rows(page)
        assert len(listed) <= admin.PAGE_SIZE
        seen += [row[3] for row in listed]
        older = re.search(r'id="audit-older"[^>]*href="([^"]+)"', page)
        if not older:
            break
        page = client.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert seen == [f"test {n}" for n in range(119, -1, -1)]
    newer = re.search(r'id="audit-newer"[^>]*href="([^"]+)"', page)
    assert newer
    back = rows(client.get(newer.group(1).replace("&amp;", "&")).get_data(as_text=True))
    assert [row[3] for row in back] == [f"test {n}" for n in range(69, 19, -1)]


def test_the_filtered_log_exports_as_inert_csv_and_the_export_is_audited(
        client: FlaskClient, events: None, db: Session) -> None:
    login_as(client, "admin")
    response = client.get("/beheer/audit.csv?van=2025-03-03&tot=2025-03-04")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    exported = read_csv(response.data)
    assert exported[0] == ["Nummer", "Tijdstip (Nederlandse tijd)", "Wie", "Handeling",
                           "Soort object", "Object", "IP-adres", "Details"]
    assert [row[3] for row in exported[1:]] == ["login_failed", "end", "start"]
    first = exported[1]
    assert first[2] == "'=HYPERLINK(\"http://evil.example\",\"klik\")"
    assert first[7] == '{"note": "<script>alert(1)</script>"}'
    logged = db.scalar(select(AuditEvent).where(AuditEvent.verb == "export"))
    assert (logged.actor, logged.object_type) == ("beheer@example.org", "audit_log")
    assert logged.details == {"rows": 3, "filters": {"since": "2025-03-03",
                                                    "until": "2025-03-04"}}


def test_an_export_too_large_is_refused_with_advice(client: FlaskClient, events: None,
                                                    db: Session,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admin, "EXPORT_LIMIT", 3)
    login_as(client, "admin")
    response = client.get("/beheer/audit.csv?handeling=start&van=2025-03-01",
                          follow_redirects=True)
    assert "Deze selectie telt 3 regels" not in response.get_data(as_text=True)
    response = client.get("/beheer/audit.csv?soort=action", follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "Deze selectie telt 6 regels; een export mag er hoogstens 3 hebben." in page
    assert 'value="action"' in page
    assert db.scalar(select(func.count()).where(AuditEvent.verb == "export")) == 1


def test_the_audit_log_is_in_english_with_lang_en(client: FlaskClient, events: None) -> None:
    login_as(client, "admin")
    page = client.get("/beheer/audit?lang=en").get_data(as_text=True)
    assert "<h1>Audit log</h1>" in page and "Clear filters" in page
    error = client.get("/beheer/audit?van=gisteren").get_data(as_text=True)
    assert "Give a date as yyyy-mm-dd, for example 2025-03-01." in error
