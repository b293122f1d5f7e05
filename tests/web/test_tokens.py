"""The API keys page (admins only) and `burgernet api token create`."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.cli import main
from core.models import ApiToken, AuditEvent, Organisation
from core.redis_server import EmbeddedRedis
from core.settings import Settings
from tests.conftest import MELDKAMER_CONFIG
from tests.web.helpers import csrf_token, login_as
from web import create_app

PAGE = "/beheer/api-sleutels/"
MN = "Politie Midden-Nederland"


def _organisation_id(db: Session, name: str = MN) -> int:
    return db.scalar(select(Organisation.id).where(Organisation.name == name))


def _create(client: FlaskClient, db: Session, name: str = "GMS Midden-Nederland",
            organisation: object = None):
    return client.post(PAGE, data={
        "csrf_token": csrf_token(client, PAGE), "name": name,
        "organisation": _organisation_id(db) if organisation is None else organisation})


def _shown_token(page: str) -> str:
    match = re.search(r'<code id="new-token-value">(bn_[A-Za-z0-9_-]+)</code>', page)
    assert match, page
    return match.group(1)


@pytest.mark.parametrize("role", ["centralist", "municipality_officer"])
def test_only_admins_reach_the_page(client: FlaskClient, role: str) -> None:
    assert client.get(PAGE).status_code == 302  # to the login page
    login_as(client, role)
    assert client.get(PAGE).status_code == 403
    assert client.post(PAGE, data={"name": "x"}).status_code in {400, 403}


def test_an_admin_makes_a_key_sees_it_once_and_it_works(client: FlaskClient,
                                                        db: Session) -> None:
    login_as(client, "admin")
    response = _create(client, db)
    assert response.status_code == 201 and response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    plain = _shown_token(page)
    assert "Kopieer deze sleutel nu" in page
    row = db.scalar(select(ApiToken).where(ApiToken.name == "GMS Midden-Nederland"))
    assert row.token_hash == hashlib.sha256(plain.encode()).hexdigest()
    assert row.organisation_id == _organisation_id(db)
    event = db.scalar(select(AuditEvent).where(AuditEvent.verb == "create",
                                               AuditEvent.object_type == "api_token"))
    assert event.actor == "beheer@example.org" and plain not in str(event.details)

    listing = client.get(PAGE).get_data(as_text=True)
    assert "GMS Midden-Nederland" in listing and MN in listing and plain not in listing

    api = client.get("/api/v1/actions", headers={"Authorization": f"Bearer {plain}"})
    assert api.status_code == 200
    assert "nooit" not in client.get(PAGE).get_data(as_text=True)  # last use now shown


def test_a_wrong_form_keeps_what_was_typed_and_says_why_in_dutch(client: FlaskClient,
                                                                 db: Session) -> None:
    login_as(client, "admin")
    empty = _create(client, db, name="  ")
    assert empty.status_code == 400
    assert "Vul een naam in." in empty.get_data(as_text=True)
    unknown = _create(client, db, name="GMS", organisation="999999")
    page = unknown.get_data(as_text=True)
    assert unknown.status_code == 400 and "Kies een organisatie." in page
    assert 'value="GMS"' in page
    garbage = _create(client, db, name="GMS", organisation="abc")
    assert garbage.status_code == 400 and "Kies een organisatie." in garbage.get_data(
        as_text=True)
    assert _create(client, db, name="GMS").status_code == 201
    twice = _create(client, db, name="GMS")
    assert twice.status_code == 400
    assert "Deze organisatie heeft al een sleutel met deze naam." in twice.get_data(as_text=True)
    long = _create(client, db, name="x" * 121)
    assert "Te lang: hoogstens 120 tekens." in long.get_data(as_text=True)
    assert db.scalar(select(ApiToken.name)) == "GMS"


def test_the_page_is_in_english_when_asked(client: FlaskClient) -> None:
    login_as(client, "admin")
    page = client.get(PAGE + "?lang=en").get_data(as_text=True)
    assert "<h1>API keys</h1>" in page and "Create a new key" in page


def test_revoking_needs_csrf_and_stops_the_key(client: FlaskClient, db: Session) -> None:
    login_as(client, "admin")
    plain = _shown_token(_create(client, db).get_data(as_text=True))
    token_id = db.scalar(select(ApiToken.id))
    url = f"{PAGE}{token_id}/intrekken"
    assert client.post(url).status_code == 400
    assert client.get("/api/v1/actions",
                      headers={"Authorization": f"Bearer {plain}"}).status_code == 200
    revoked = client.post(url, data={"csrf_token": csrf_token(client, PAGE)},
                          follow_redirects=True)
    assert "API-sleutel ingetrokken." in revoked.get_data(as_text=True)
    assert client.get("/api/v1/actions",
                      headers={"Authorization": f"Bearer {plain}"}).status_code == 401
    again = client.post(url, data={"csrf_token": csrf_token(client, PAGE)},
                        follow_redirects=True)
    assert "Deze API-sleutel was al ingetrokken." in again.get_data(as_text=True)
    assert len(db.scalars(select(AuditEvent).where(AuditEvent.verb == "revoke")).all()) == 1
    assert client.post(f"{PAGE}999999/intrekken",
                       data={"csrf_token": csrf_token(client, PAGE)}).status_code == 404


@pytest.fixture
def cli_env(tmp_path: Path, new_database_url: Callable[[], str],
            redis_server: EmbeddedRedis) -> dict[str, str]:
    """A fresh database with the reference data and the demo organisations."""
    env = {"BURGERNET_HOME": str(tmp_path), "DATABASE_URL": new_database_url(),
           "MELDKAMER_CONFIG": str(MELDKAMER_CONFIG), "REDIS_URL": redis_server.url,
           "SECRET_KEY": "test", "TTS": "off"}
    for args in (["load-reference"], ["seed-demo", "--participants", "0"]):
        assert CliRunner().invoke(main, args, env=env).exit_code == 0
    return env


def test_the_cli_makes_a_key_that_works_on_the_api(cli_env: dict[str, str]) -> None:
    runner = CliRunner(mix_stderr=False)
    result = runner.invoke(main, ["api", "token", "create", "--organisation", MN,
                                  "--name", "GMS"], env=cli_env, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    plain = result.stdout.strip()
    assert re.fullmatch(r"bn_[A-Za-z0-9_-]{43}", plain)
    assert "not shown again" in result.stderr
    app = create_app(Settings.from_env(cli_env))
    response = app.test_client().post(
        "/api/v1/actions", headers={"Authorization": f"Bearer {plain}"},
        json={"kind": "suspect", "title": {"nl": "Man in rode jas"},
              "area": {"type": "circle", "lat": 52.09, "lon": 5.12, "radius_m": 2000}})
    assert response.status_code == 201 and response.get_json()["meldkamer"] == "MN"
    listed = runner.invoke(main, ["api", "token", "list"], env=cli_env)
    assert f"{MN} / GMS" in listed.stdout
    unknown = runner.invoke(main, ["api", "token", "create", "--organisation", "Nergens",
                                   "--name", "x"], env=cli_env)
    assert unknown.exit_code == 1 and "no organisation 'Nergens'" in unknown.stderr
    revoked = runner.invoke(main, ["api", "token", "revoke", "1"], env=cli_env)
    assert "revoked" in revoked.stdout
    assert app.test_client().get("/api/v1/actions", headers={
        "Authorization": f"Bearer {plain}"}).status_code == 401


# --- scopes ---------------------------------------------------------------------------------

UTRECHT = "Gemeente Utrecht"


def _create_with(client: FlaskClient, db: Session, name: str, organisation: str,
                 scopes: list[str]):
    return client.post(PAGE, data={"csrf_token": csrf_token(client, PAGE), "name": name,
                                   "organisation": _organisation_id(db, organisation),
                                   "scopes": scopes})


def test_an_admin_chooses_a_keys_scopes_within_what_its_organisation_may(
        client: FlaskClient, db: Session) -> None:
    login_as(client, "admin")
    form = client.get(PAGE).get_data(as_text=True)
    assert 'id="scope-amber_national"' in form and "Niets aangevinkt" in form
    made = _create_with(client, db, "Landelijk", MN, ["suspect", "amber", "amber_national"])
    assert made.status_code == 201
    assert "Verdachte, AMBER Alert (regionaal), AMBER Alert (landelijk)" in made.get_data(
        as_text=True)
    assert db.scalar(select(ApiToken.scopes).where(ApiToken.name == "Landelijk")) == \
        "suspect amber amber_national"
    refused = _create_with(client, db, "Gemeente-app", UTRECHT, ["preventive", "amber"])
    assert refused.status_code == 400
    page = refused.get_data(as_text=True)
    assert "Deze soort organisatie kan niet alle gekozen bevoegdheden krijgen." in page
    assert 'id="scope-amber" value="amber" checked' in page  # what was ticked stays
    assert db.scalar(select(ApiToken.id).where(ApiToken.name == "Gemeente-app")) is None
    assert _create_with(client, db, "Gemeente-app", UTRECHT, []).status_code == 201
    assert db.scalar(select(ApiToken.scopes).where(ApiToken.name == "Gemeente-app")) == \
        "neighbourhood_inquiry preventive"
    listing = client.get(PAGE + "?lang=en").get_data(as_text=True)
    assert "Neighbourhood inquiry, Preventive message" in listing and "Permissions" in listing


def test_the_cli_gives_scopes_and_changes_them(cli_env: dict[str, str]) -> None:
    runner = CliRunner(mix_stderr=False)
    made = runner.invoke(main, ["api", "token", "create", "--organisation", MN, "--name", "GMS"],
                         env=cli_env)
    assert made.exit_code == 0 and "scopes: suspect vehicle missing_person amber" in made.stderr
    plain = made.stdout.strip()
    app = create_app(Settings.from_env(cli_env))
    amber = {"kind": "amber", "title": {"nl": "Vermist kind"}, "national": True}
    headers = {"Authorization": f"Bearer {plain}"}
    assert app.test_client().post("/api/v1/actions", headers=headers,
                                  json=amber).status_code == 403
    granted = runner.invoke(main, ["api", "token", "scopes", "1", "--scope", "amber",
                                   "--scope", "amber_national"], env=cli_env)
    assert granted.exit_code == 0 and "amber amber_national" in granted.stdout
    assert app.test_client().post("/api/v1/actions", headers=headers,
                                  json=amber).status_code == 201
    listed = runner.invoke(main, ["api", "token", "list"], env=cli_env)
    assert "scopes: amber amber_national" in listed.stdout
    refused = runner.invoke(main, ["api", "token", "create", "--organisation", UTRECHT,
                                   "--name", "x", "--scope", "amber"], env=cli_env)
    assert refused.exit_code == 1
    assert "a municipality organisation cannot get amber" in refused.stderr
    unknown = runner.invoke(main, ["api", "token", "create", "--organisation", MN,
                                   "--name", "y", "--scope", "everything"], env=cli_env)
    assert unknown.exit_code == 2  # click names the choices
