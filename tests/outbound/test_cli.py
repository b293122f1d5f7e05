import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session

from core.cli import main
from core.db import make_engine
from core.redis_server import EmbeddedRedis
from tests.conftest import MELDKAMER_CONFIG
from tests.population import add_people, neighbourhood


@pytest.fixture
def run(tmp_path: Path, new_database_url: Callable[[], str], redis_server: EmbeddedRedis,
        redis_client):
    """`burgernet` on a database with the reference data, the demo organisations and a few
    dozen participants of our own around Utrecht centre."""
    url = new_database_url()
    env = {"BURGERNET_HOME": str(tmp_path), "DATABASE_URL": url,
           "MELDKAMER_CONFIG": str(MELDKAMER_CONFIG), "REDIS_URL": redis_server.url,
           "SMS_RATE": "0", "VOICE_RATE": "0"}

    def invoke(*args: str):
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    assert invoke("load-reference").exit_code == 0
    assert invoke("seed-demo", "--participants", "0").exit_code == 0
    engine = make_engine(url)
    with Session(engine) as session, session.begin():
        add_people(session, neighbourhood(24), datetime.now(UTC))
    engine.dispose()
    return invoke


def test_an_action_from_draft_to_result_on_the_command_line(run) -> None:
    created = run("action", "create", "--kind", "suspect", "--title", "Man in rode jas",
                  "--lat", "52.0907", "--lon", "5.1214", "--radius", "4000",
                  "--meldkamer", "MN")
    assert created.exit_code == 0, created.output
    action_id = created.output.strip()
    preview = run("action", "preview", action_id)
    assert "participants" in preview.output and "SMS text (nl): 1 part(s)" in preview.output
    assert "at the configured rate" in preview.output and "forecast: everyone reached in" \
        in preview.output
    started = run("action", "start", action_id)
    assert f"action {action_id} started:" in started.output
    assert "already started; nothing done" in run("action", "start", action_id).output
    assert run("worker", "--burst").exit_code == 0
    status = run("action", "status", action_id)
    assert "sms    sent" in status.output and "forecast: everyone reached in 0 s" in status.output
    ended = run("action", "end", action_id, "--outcome", "arrested")
    assert f"action {action_id} ended (arrested)" in ended.output
    assert "is active, not" not in ended.output
    again = run("action", "end", action_id, "--outcome", "found")
    assert again.exit_code == 1 and "is ended, not active" in again.output


@pytest.mark.parametrize(("args", "message"), [
    (["--lat", "52", "--lon", "5", "--radius", "0"], "must be a positive number"),
    (["--lat", "52", "--lon", "5"], "needs a centre"),
    (["--lat", "2", "--lon", "5", "--radius", "10"], "outside Europe"),
])
def test_a_bad_area_is_one_clear_line(run, args, message) -> None:
    result = run("action", "create", "--kind", "suspect", "--title", "x", "--meldkamer", "MN",
                 *args)
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and message in result.output


def test_an_unknown_action_is_named(run) -> None:
    result = run("action", "start", "999")
    assert result.exit_code == 1 and "no action 999" in result.output


def test_an_action_over_a_drawn_polygon_file(run, tmp_path: Path) -> None:
    """The file is read as UTF-8 (as GeoJSON is), whatever the machine's locale."""
    shape = tmp_path / "binnenstad.geojson"
    shape.write_text(json.dumps({
        "type": "Polygon", "name": "Binnenstad – rond de Dom",
        "coordinates": [[[5.10, 52.08], [5.14, 52.08], [5.14, 52.10], [5.10, 52.10],
                         [5.10, 52.08]]]}, ensure_ascii=False), encoding="utf-8")
    created = run("action", "create", "--kind", "suspect", "--title", "Man in rode jas",
                  "--polygon", str(shape), "--meldkamer", "MN")
    assert created.exit_code == 0, created.output
    preview = run("action", "preview", created.output.strip())
    assert re.search(r"^[1-9]\d* participants", preview.output), preview.output


@pytest.mark.parametrize("args", [("action", "status"), ("action", "preview"),
                                  ("action", "start"), ("action", "end", "--outcome", "found"),
                                  ("api", "token", "revoke")])
def test_an_id_no_row_can_have_is_a_clear_error(run, args) -> None:
    """Not a traceback of SQLite's OverflowError: beyond 64 bits it cannot even compare."""
    result = run(*args, "9" * 23)
    assert result.exit_code == 2 and "is not in the range 0<=x<=2147483647" in result.output
