"""Gunicorn's logger with personal data taken out: the access log never holds a reaction
link's token, a code or a number from a query string, nor a referrer that carries them.

The e-mailed reaction link must carry its token in the URL, so the log line of its first
request would too; every URL-like field of a line (request line, path, query, referrer,
headers and environment variables that repeat them) is masked before it is written, and
every line of the access and error logs then passes the same redaction as the application's
own log.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from gunicorn.glogging import Logger

from core.logs import log_context, prepare_handler
from core.privacy import SECRET_MASK, install_redaction, redact, redact_query
from web.request_ids import HEADER

#: Atoms that hold a bare query string rather than a URL.
QUERY_ATOMS = frozenset({"q", "{query_string}e"})
#: Headers that are credentials (the session cookie also holds a pending sign-up's number).
SECRET_ATOMS = frozenset({"{cookie}i", "{authorization}i", "{set-cookie}o",
                          "{http_cookie}e", "{http_authorization}e"})
#: Atoms that never hold anything personal (time, status, sizes, durations, pid).
PLAIN_ATOMS = frozenset({"t", "s", "m", "H", "b", "B", "T", "D", "M", "L", "p"})


class PrivateLogger(Logger):
    """gunicorn.glogging.Logger whose lines are redacted (see `core.privacy.redact`) and
    carry the request id (`web.request_ids`) in JSON; `JsonPrivateLogger` writes JSON."""

    log_format = "text"

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any],
              request_time: Any) -> dict[str, Any]:
        used = used_atoms(self.cfg.access_log_format)
        return private_atoms(super().atoms(resp, req, environ, request_time), used)

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                prepare_handler(handler, self.log_format)
            install_redaction(log)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        """The access line, written once the app has answered: its request id is then
        only in the answer's header."""
        given = {name.lower(): value for name, value in getattr(resp, "headers", None) or ()}
        with log_context(request_id=given.get(HEADER.lower())):
            super().access(resp, req, environ, request_time)


class JsonPrivateLogger(PrivateLogger):
    """`PrivateLogger` writing one JSON object per line (LOG_FORMAT=json)."""

    log_format = "json"


@cache
def used_atoms(log_format: str) -> frozenset[str]:
    """The atoms LOG_FORMAT names (headers and variables in lower case, as gunicorn reads)."""
    return frozenset(name.lower() if name.startswith("{") else name
                     for name in re.findall(r"%\(([^)]+)\)", log_format))


def private_atoms(atoms: dict[str, Any], used: frozenset[str] | None = None) -> dict[str, Any]:
    """ATOMS (only those USED, when given: gunicorn writes '-' for the rest) with every text
    that may hold a URL, header or query string redacted."""
    cleaned = {}
    for key, value in atoms.items():
        if used is not None and key not in used:
            continue
        if not isinstance(value, str) or key in PLAIN_ATOMS:
            cleaned[key] = value
        elif key in SECRET_ATOMS:
            cleaned[key] = SECRET_MASK
        elif key in QUERY_ATOMS:
            cleaned[key] = redact_query(value)
        else:
            cleaned[key] = redact(value)
    return cleaned

