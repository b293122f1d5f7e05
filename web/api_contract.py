"""The API's contract: requests are checked against the OpenAPI document itself, so what the
document promises and what the app accepts cannot drift apart.

The document (api_openapi.yaml) is OpenAPI 3.1, whose schemas are JSON Schema 2020-12; they
are validated as they stand with jsonschema-rs (the validator schemathesis itself uses).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import redis
import yaml
from flask import Response, jsonify, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import (
    HTTPException,
    MethodNotAllowed,
    NotFound,
    RequestEntityTooLarge,
)

from core.errors import BurgernetError
from core.permissions import NotPermitted
from outbound.actions import ActionError, ActionInvalid
from routing.places import PlaceQueryError
from web.i18n import ENGLISH, LANGUAGES
from web.inputs import unstorable
from web.places import error_parts

DOCUMENT_PATH = Path(__file__).with_name("api_openapi.yaml")
#: Polygons of a whole municipality fit easily; anything larger is refused before parsing.
MAX_BODY_BYTES = 1024 * 1024
INTEGER = re.compile(r"^-?[0-9]{1,19}$")
UNSTORABLE = "De body bevat tekst die niet kan worden opgeslagen: een NUL-teken of een losse " \
    "surrogaat (\\u0000, \\ud800-\\udfff)."


class ApiError(Exception):
    """An answer other than success: STATUS, a stable ERROR_ID, a Dutch MESSAGE (a key of
    the translation catalogue, {placeholders} from VALUES), and FIELDS already in the
    request's language."""

    def __init__(self, status: int, error_id: str, message: str, *,
                 fields: dict[str, str] | None = None, details: dict[str, str] | None = None,
                 headers: dict[str, str] | None = None, **values: object) -> None:
        super().__init__(f"{status} {error_id}")
        self.status = status
        self.error_id = error_id
        self.message = message
        self.fields = fields or {}
        self.details = details or {}
        self.headers = headers or {}
        self.values = values


@dataclass(frozen=True)
class Operation:
    """One operation of the document, with its $refs resolved."""

    operation_id: str
    parameters: tuple[dict[str, Any], ...]
    body_schema: dict[str, Any] | None


@dataclass
class Checked:
    """A request that matches its operation: parameters by name (converted) and the body."""

    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None


@cache
def document() -> dict[str, Any]:
    """The OpenAPI document, as served at /api/v1/openapi.json."""
    with DOCUMENT_PATH.open(encoding="utf-8") as file:
        return yaml.safe_load(file)


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


@cache
def operations() -> dict[str, Operation]:
    """Every operation of the document by operationId."""
    found = {}
    for item in document()["paths"].values():
        shared = [_resolve(p) for p in item.get("parameters", [])]
        for method, spec in item.items():
            if method == "parameters":
                continue
            own = [_resolve(p) for p in spec.get("parameters", [])]
            body = spec.get("requestBody")
            schema = (_resolve(body)["content"]["application/json"]["schema"]
                      if body else None)
            found[spec["operationId"]] = Operation(spec["operationId"], (*shared, *own), schema)
    return found


@cache
def _validator(schema_text: str) -> Any:
    """A validator for one schema of the document; its $refs resolve within the document."""
    schema = {**json.loads(schema_text), "components": document()["components"]}
    return jsonschema_rs.Draft202012Validator(schema)


def _errors(schema: dict[str, Any], instance: Any, prefix: str) -> dict[str, tuple[str, str]]:
    """Field (dotted path) → (Dutch message with values, technical reason), one per field."""
    found: dict[str, tuple[str, str]] = {}
    try:
        errors = list(_validator(json.dumps(schema, sort_keys=True)).iter_errors(instance))
    except (ValueError, OverflowError) as exc:  # e.g. an integer beyond 64 bits
        return {prefix or "body": (translate("Ongeldige waarde."), str(exc))}
    for error in errors:
        for name, message, reason in _explain(error):
            found.setdefault(_join(prefix, name), (message, reason))
    return found


def _explain(error: Any) -> list[tuple[str, str, str]]:
    """(field, message, technical reason) for one error; a oneOf speaks for its branch."""
    kind, path = error.kind, list(error.instance_path)
    if kind.name == "oneOf" and isinstance(error.instance, dict):
        branch = _chosen_branch(kind.context, path)
        if branch:
            return [triple for sub in branch for triple in _explain(sub)]
        return [(_dotted(path), translate("Geef een cirkel (type circle met lat, lon en "
                                          "radius_m) of een GeoJSON Polygon of MultiPolygon."),
                 error.message)]
    if kind.name == "required":
        return [(_dotted([*path, kind.property]), translate("Vul dit veld in."), error.message)]
    if kind.name == "additionalProperties":
        return [(_dotted([*path, name]), translate("Onbekend veld."), error.message)
                for name in kind.unexpected]
    return [(_dotted(path), _message(kind), error.message)]


def _chosen_branch(branches: list[list[Any]], path: list[Any]) -> list[Any] | None:
    """Of a oneOf over objects told apart by `type`, the errors of the branch that was meant
    (their paths are absolute, like the oneOf's own)."""
    meant = [errors for errors in branches
             if not any(e.kind.name == "const" and list(e.instance_path) == [*path, "type"]
                        for e in errors)]
    return meant[0] if len(meant) == 1 else None


#: Dutch message per JSON Schema keyword; {placeholders} come from the error's details.
MESSAGES = {
    "type": "Verkeerd type: verwacht {types}.",
    "enum": "Kies een van: {options}.",
    "const": "Moet {expected_value} zijn.",
    "minLength": "Te kort: minstens {limit} tekens.",
    "maxLength": "Te lang: hoogstens {limit} tekens.",
    "minimum": "Te klein: minstens {limit}.",
    "maximum": "Te groot: hoogstens {limit}.",
    "exclusiveMinimum": "Moet groter zijn dan {limit}.",
    "exclusiveMaximum": "Moet kleiner zijn dan {limit}.",
    "minItems": "Te weinig elementen: minstens {limit}.",
    "maxItems": "Te veel elementen: hoogstens {limit}.",
    "pattern": "Ongeldige tekens of lengte.",
}


def _message(kind: Any) -> str:
    if kind.name == "minLength" and kind.limit == 1:
        return translate("Vul dit veld in.")
    template = MESSAGES.get(kind.name)
    if template is None:
        return translate("Ongeldige waarde.")
    values = {name: ("/" if name == "types" else ", ").join(map(str, value))
              if isinstance(value, list) else value for name, value in kind.as_dict().items()}
    return translate(template, **values)


def _dotted(path: list[Any]) -> str:
    return ".".join(str(part) for part in path)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix and name else (prefix or name or "body")


def check(operation_id: str, path_values: dict[str, str] | None = None) -> Checked:
    """Parameters and body of the current request for OPERATION_ID, converted and checked
    against the document; raises ApiError (400, 413 or 415) naming every wrong field."""
    operation = operations()[operation_id]
    checked = Checked()
    problems: dict[str, tuple[str, str]] = {}
    for parameter in operation.parameters:
        raw = _raw_parameter(parameter, path_values or {})
        if raw is None:
            if parameter.get("required"):
                problems[parameter["name"]] = (translate("Vul dit veld in."), "required")
            continue
        value = _convert(raw, parameter["schema"])
        problems.update(_errors(parameter["schema"], value, parameter["name"]))
        checked.params[parameter["name"]] = value
    declared = {p["name"] for p in operation.parameters if p["in"] == "query"}
    for name in request.args:
        if name not in declared:
            problems[name or "query"] = (translate("Onbekende parameter."),
                                          f"query parameter {name!r} is not in the document")
    if operation.body_schema is not None:
        checked.body = _json_body()
        problems.update(_errors(operation.body_schema, checked.body, ""))
    if problems:
        raise ApiError(400, "invalid_request", "Het verzoek klopt niet met de API-beschrijving.",
                       fields={name: message for name, (message, _) in problems.items()},
                       details={name: reason for name, (_, reason) in problems.items()})
    return checked


def _raw_parameter(parameter: dict[str, Any], path_values: dict[str, str]) -> str | None:
    name, where = parameter["name"], parameter["in"]
    if where == "path":
        return path_values.get(name)
    if where == "query":
        return request.args.get(name)
    return request.headers.get(name)


def _convert(raw: str, schema: dict[str, Any]) -> Any:
    """Query and path values arrive as text; an integer parameter is converted when it is one."""
    if schema.get("type") == "integer" and INTEGER.match(raw):
        return int(raw)
    return raw


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _json_body() -> Any:
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type",
                       "Stuur de gegevens als JSON (Content-Type: application/json).")
    request.max_content_length = MAX_BODY_BYTES
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ApiError(400, "invalid_json", "De body is leeg; stuur een JSON-object.")
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", "De body is geen geldige JSON.",
                       details={"body": str(exc)[:200]}) from None
    if unstorable(body):
        raise ApiError(400, "invalid_json", UNSTORABLE,
                       details={"body": "a string holds NUL (\\u0000) or a lone surrogate"})
    return body


def language() -> str:
    """The language of API messages: Accept-Language, else Dutch (no cookies, no ?lang=)."""
    return request.accept_languages.best_match(LANGUAGES, default="nl") or "nl"


def translate(text: str, **values: object) -> str:
    """TEXT (Dutch, the catalogue key) in the request's language, placeholders filled."""
    chosen = ENGLISH.get(text, text) if language() == "en" else text
    return chosen.format(**values) if values else chosen


def error_response(error: ApiError) -> Response:
    """The one error shape: {"error": {"id", "message", "fields", "details"?}}."""
    body: dict[str, Any] = {"id": error.error_id,
                            "message": translate(error.message, **error.values),
                            "fields": error.fields}
    if error.details:
        body["details"] = error.details
    response = jsonify({"error": body})
    response.status_code = error.status
    response.headers.update(error.headers)
    response.headers["Cache-Control"] = "no-store"
    return response


#: The names of ActionInvalid's fields in the API's request bodies.
FIELD_NAMES = {"title_nl": "title.nl", "title_en": "title.en",
               "description_nl": "description.nl", "description_en": "description.en",
               "instruction_nl": "instruction.nl", "instruction_en": "instruction.en",
               "outcome_text": "text"}


def as_api_error(exc: BaseException) -> ApiError:
    """Every exception a view can raise, as the API answers it: the one place where domain
    errors (with their stable error_id) become HTTP statuses."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, NotPermitted):
        return ApiError(403, exc.error_id, "Dit valt buiten de bevoegdheid van deze API-sleutel; "
                        "zie de velden.",
                        fields={FIELD_NAMES.get(n, n): translate(m) for n, m in exc.errors.items()},
                        details={FIELD_NAMES.get(n, n): d for n, d in exc.details.items()})
    if isinstance(exc, ActionInvalid):
        return ApiError(422, exc.error_id, "De actie is niet geldig; zie de velden.",
                        fields={FIELD_NAMES.get(n, n): translate(m) for n, m in exc.errors.items()},
                        details={FIELD_NAMES.get(n, n): d for n, d in exc.details.items()})
    if isinstance(exc, PlaceQueryError):
        status, message, values = error_parts(exc)
        return ApiError(status, exc.error_id, message, fields={"q": translate(message, **values)},
                        details={"q": str(exc)}, **values)
    if isinstance(exc, ActionError):
        return ApiError(409, exc.error_id, "De actie kan dit nu niet.",
                        details={"reason": str(exc)})
    if isinstance(exc, BurgernetError):
        return ApiError(422, exc.error_id, "Het verzoek kan niet worden uitgevoerd.",
                        details={"reason": str(exc)})
    if isinstance(exc, redis.RedisError):
        return ApiError(503, "queue_unavailable",
                        "De wachtrij is niet bereikbaar; probeer het zo opnieuw.",
                        headers={"Retry-After": "5"})
    if isinstance(exc, OperationalError):
        logging.getLogger(__name__).warning("database unavailable: %s", exc.orig)
        return ApiError(503, "database_unavailable",
                        "De database is even niet bereikbaar; probeer het zo opnieuw.",
                        headers={"Retry-After": "5"})
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    logging.getLogger(__name__).exception("API request failed")
    return ApiError(500, "internal_error", "Er ging iets mis aan onze kant; het is vastgelegd.")


def _http_error(exc: HTTPException) -> ApiError:
    if isinstance(exc, MethodNotAllowed):
        return ApiError(405, "method_not_allowed", "Deze methode kan hier niet.",
                        headers={"Allow": ", ".join(sorted(exc.valid_methods or []))})
    if isinstance(exc, RequestEntityTooLarge):
        return ApiError(413, "body_too_large", "De body is te groot: hoogstens 1 MB.")
    if isinstance(exc, NotFound):
        return ApiError(404, "not_found", "Niet gevonden.")
    return ApiError(exc.code or 500, "http_error", "Het verzoek kan niet worden uitgevoerd.")
