import re

import pytest

from core.db import check_connection, make_engine, redact
from core.errors import DatabaseError


@pytest.mark.parametrize(("url", "message"), [
    ("not a url", "is not a database URL"),
    ("mysql://u:p@localhost/x", "'mysql' is not supported"),
    ("postgresql+nosuchdriver://u@localhost/x",
     "driver 'postgresql+nosuchdriver' is not installed"),
])
def test_bad_urls_are_refused_in_one_line(url: str, message: str) -> None:
    with pytest.raises(DatabaseError, match=re.escape(message)) as caught:
        make_engine(url)
    assert "\n" not in str(caught.value)


def test_an_unreachable_server_is_reported_without_its_password() -> None:
    engine = make_engine("postgresql+psycopg://burgernet:s3cret@127.0.0.1:1/burgernet")
    with pytest.raises(DatabaseError, match="cannot connect to postgresql") as caught:
        check_connection(engine)
    assert "s3cret" not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_redact_hides_the_password() -> None:
    assert redact("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"
