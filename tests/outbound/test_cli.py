from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.cli import main
from core.redis_server import EmbeddedRedis
from tests.conftest import MELDKAMER_CONFIG


@pytest.fixture
def run(tmp_path: Path, new_database_url: Callable[[], str], redis_server: EmbeddedRedis,
        redis_client):
    env = {"BURGERNET_HOME": str(tmp_path), "DATABASE_URL": new_database_url(),
           "MELDKAMER_CONFIG": str(MELDKAMER_CONFIG), "REDIS_URL": redis_server.url,
           "SMS_RATE": "0", "VOICE_RATE": "0"}

    def invoke(*args: str):
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    assert invoke("load-reference").exit_code == 0
    assert invoke("seed-demo", "--participants", "3000").exit_code == 0
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


@pytest.mark.parametrize("args", [("action", "status"), ("action", "preview"),
                                  ("action", "start"), ("action", "end", "--outcome", "found"),
                                  ("api", "token", "revoke")])
def test_an_id_no_row_can_have_is_a_clear_error(run, args) -> None:
    """Not a traceback of SQLite's OverflowError: beyond 64 bits it cannot even compare."""
    result = run(*args, "9" * 23)
    assert result.exit_code == 2 and "is not in the range 0<=x<=2147483647" in result.output
