import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from core.cli import main
from core.db import make_engine
from tests.conftest import MELDKAMER_CONFIG, SERVER_URL


@pytest.fixture
def run(tmp_path: Path, new_database_url: Callable[[], str]):
    """Invoke `burgernet ARGS` on a new database, as a user would from a shell."""
    env = {"BURGERNET_HOME": str(tmp_path), "DATABASE_URL": new_database_url(),
           "MELDKAMER_CONFIG": str(MELDKAMER_CONFIG), "REDIS_URL": ""}

    def invoke(*args: str, **extra: str):
        return CliRunner().invoke(main, list(args), env={**env, **extra}, catch_exceptions=False)

    return invoke


def test_load_reference_reports_counts_and_is_idempotent(run) -> None:
    first = run("load-reference")
    assert first.exit_code == 0, first.output
    assert "342 municipalities, 342 with exactly one safety region and meldkamer" in first.output
    assert "4799 PC4 areas, 4799 with a municipality" in first.output
    second = run("load-reference")
    assert second.exit_code == 0
    assert "nothing changed" in second.output
    assert "postcode       inserted     0  updated     0  unchanged  4799" in second.output


def test_load_reference_on_an_old_database_says_how_many_rows_changed(
        run, new_database_url: Callable[[], str]) -> None:
    url = new_database_url()
    assert run("load-reference", DATABASE_URL=url).exit_code == 0
    engine = make_engine(url)
    with engine.begin() as connection:  # 6300 Valkenburg as the 2023 data had it: Katwijk
        katwijk = connection.scalar(text("SELECT id FROM municipality WHERE code = 'GM0537'"))
        connection.execute(text("UPDATE postcode SET lat = 52.1779, lon = 4.43457, "
                                "municipality_id = :m, population = 0 WHERE pc4 = '6300'"),
                           {"m": katwijk})
    engine.dispose()
    again = run("load-reference", DATABASE_URL=url)
    assert again.exit_code == 0, again.output
    assert "postcode       inserted     0  updated     1  unchanged  4798" in again.output
    assert again.output.rstrip().endswith("1 row(s) changed")


def test_a_bad_row_is_one_line_and_a_failure(run, tmp_path: Path) -> None:
    import shutil

    from core.settings import DEFAULT_DATA_DIR

    data = tmp_path / "data"
    shutil.copytree(DEFAULT_DATA_DIR, data)
    pc4 = data / "pc4.csv"
    pc4.write_text(pc4.read_text().replace("GM0363,place", "GM9999,place", 1))
    result = run("load-reference", REFERENCE_DATA_DIR=str(data))
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {pc4}:2: unknown municipality code 'GM9999'"]
    assert "nothing changed" not in run("load-reference").output  # the failed run wrote nothing


@pytest.mark.parametrize(("url", "message"), [
    ("nonsense", "error: DATABASE_URL 'nonsense' is not a database URL"),
    ("oracle://x@y/z", "error: DATABASE_URL oracle://x@y/z: backend 'oracle' is not supported"),
    ("postgresql+psycopg://u:secret@127.0.0.1:1/db", "error: cannot connect to "
                                                     "postgresql+psycopg://u:***@127.0.0.1:1/db"),
])
def test_a_bad_database_url_is_one_clear_line(run, url: str, message: str) -> None:
    result = run("load-reference", DATABASE_URL=url)
    assert result.exit_code == 1
    assert result.output.startswith(message)
    assert result.output.count("\n") == 1
    assert "secret" not in result.output


def test_seed_demo_prints_logins_and_counts(run) -> None:
    assert run("load-reference").exit_code == 0
    result = run("seed-demo", "--participants", "500")
    assert result.exit_code == 0, result.output
    assert "centralist@example.org (centralist)" in result.output
    assert "500 participants with" in result.output


def test_seed_demo_without_reference_data_says_what_to_do(run) -> None:
    result = run("seed-demo", "--participants", "10")
    assert result.exit_code == 1
    assert "run `burgernet load-reference`" in result.output


def test_db_cluster_orders_locations_on_postgresql_and_explains_itself_on_sqlite(run) -> None:
    assert run("load-reference").exit_code == 0
    assert run("seed-demo", "--participants", "200").exit_code == 0
    result = run("db", "cluster")
    assert result.exit_code == 0, result.output
    postgres = "postgresql" in (SERVER_URL or "")
    assert ("clustered on their GiST index" if postgres else "nothing to do") in result.output


def test_the_installed_command_lists_every_layers_commands() -> None:
    result = subprocess.run([sys.executable, "-m", "core.cli", "--help"], capture_output=True,
                            text=True, check=True)
    for command in ("db", "load-reference", "seed-demo", "run", "web", "worker", "action",
                    "route", "sounds", "sip", "push"):
        assert f"  {command} " in result.stdout
