"""Schemathesis against the app in-process: every operation of the OpenAPI document, with
generated valid and invalid requests, must never answer 5xx and must answer as documented;
and chains of calls along the document's links (create → start → status → end) as well."""

from __future__ import annotations

from typing import Any

import redis
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.orm import Session, sessionmaker

from tests.web.test_api import bearer, make_token, token  # noqa: F401 (fixtures)
from web import api_contract

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance, negative_data_rejection]
#: Fixtures are made once per test and shared by all its examples (the app, its token).
SHARED_FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                   HealthCheck.filter_too_much, HealthCheck.data_too_large]

#: The document the app serves at /api/v1/openapi.json (test_api checks that they are the
#: same) and validates requests with. Loaded here rather than with
#: `schemathesis.pytest.from_fixture`, whose lazy loader fails on pytest 9 (it sets the
#: removed `Node._nodeid`); every request still goes to the app under test over WSGI.
schema = schemathesis.openapi.from_dict(api_contract.document())


def _forget_failures(client: redis.Redis) -> None:
    """Generated requests without a token count as failed authentications; they must not
    lock the rest of the run out with 429."""
    client.delete("api-fail:ip:127.0.0.1")


@schema.parametrize()
@settings(max_examples=40, derandomize=True, deadline=None, suppress_health_check=SHARED_FIXTURES)
def test_every_operation_keeps_its_document(case: schemathesis.Case, app: Flask,
                                            token: str,  # noqa: F811
                                            redis_client: redis.Redis) -> None:
    _forget_failures(redis_client)
    case.call_and_validate(app=app, headers=bearer(token), checks=CHECKS)


def test_linked_calls_keep_the_document(app: Flask, token: str,  # noqa: F811
                                        redis_client: redis.Redis,
                                        sessions: sessionmaker[Session]) -> None:
    connection = sessions.kw["bind"]

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        """Each run starts from the same state: what a run stored (actions, their starts and
        ends, idempotency keys) is undone after it, so a replay while shrinking meets the
        answers the first run met (else Hypothesis calls the rules flaky)."""

        def __init__(self) -> None:
            super().__init__()
            self.savepoint = connection.begin_nested()

        def teardown(self) -> None:
            self.savepoint.rollback()
            keys = list(redis_client.scan_iter("api:idempotency:*"))
            if keys:
                redis_client.delete(*keys)
            super().teardown()

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            _forget_failures(redis_client)
            return {"app": app, "headers": bearer(token)}

        def validate_response(self, response: Any, case: schemathesis.Case,
                              additional_checks: Any = None, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS[:-1], transport_kwargs=kwargs)

    Workflow.run(settings=settings(max_examples=15, stateful_step_count=6, derandomize=True,
                                   deadline=None, suppress_health_check=SHARED_FIXTURES))
