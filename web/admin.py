"""The audit log for admins: filter, page through newest first, export as CSV.

Reading the log is not itself logged (each page and filter would add rows to what is being
read); exporting it is, since that takes the trail out of the system.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import Select, exists, func, or_, select

from core import audit
from core.models import AuditEvent, Role, User
from core.targeting import LOCAL_TIME
from web.auth import roles_required
from web.context import db
from web.i18n import translate as _
from web.stats import csv_response

bp = Blueprint("admin", __name__, url_prefix="/beheer")

PAGE_SIZE = 50
#: More rows than this in one export is a sign the filters are too wide.
EXPORT_LIMIT = 100_000
#: Query parameter → (field, longest accepted text) for the text filters.
TEXT_FILTERS = {"wie": ("actor", 160), "handeling": ("verb", 64), "soort": ("object_type", 40),
                "object": ("object_id", 64)}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class AuditFilter:
    """What the admin narrowed the log to; empty fields do not filter."""

    actor: str = ""
    verb: str = ""
    object_type: str = ""
    object_id: str = ""
    since: date | None = None
    until: date | None = None

    def apply(self, statement: Select[Any]) -> Select[Any]:
        """STATEMENT over AuditEvent narrowed to the events this filter lets through."""
        if self.actor:
            needle = self.actor.lower()
            statement = statement.outerjoin(User, User.id == AuditEvent.user_id).where(or_(
                func.lower(AuditEvent.actor).contains(needle, autoescape=True),
                func.lower(User.name).contains(needle, autoescape=True)))
        for name in ("verb", "object_type", "object_id"):
            if getattr(self, name):
                statement = statement.where(getattr(AuditEvent, name) == getattr(self, name))
        if self.since:
            statement = statement.where(AuditEvent.at >= _local_midnight(self.since))
        if self.until:
            statement = statement.where(
                AuditEvent.at < _local_midnight(self.until + timedelta(days=1)))
        return statement


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=LOCAL_TIME).astimezone(UTC)


def _parse_date(text: str, name: str, errors: dict[str, str]) -> date | None:
    if not text:
        return None
    try:
        if not _DATE.fullmatch(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        errors[name] = "Geef een datum als jjjj-mm-dd, bijvoorbeeld 2025-03-01."
        return None


def parse_filter(args: Mapping[str, str]) -> tuple[AuditFilter, dict[str, str]]:
    """The filter from the query string, and a Dutch message per wrong field."""
    errors: dict[str, str] = {}
    texts: dict[str, str] = {}
    for param, (name, longest) in TEXT_FILTERS.items():
        value = args.get(param, "").strip()
        if len(value) > longest:
            errors[param] = _("Hoogstens {n} tekens.", n=longest)
        else:
            texts[name] = value
    since = _parse_date(args.get("van", "").strip(), "van", errors)
    until = _parse_date(args.get("tot", "").strip(), "tot", errors)
    if since and until and until < since:
        errors["tot"] = "De einddatum ligt voor de begindatum."
    if errors:
        return AuditFilter(), errors
    return AuditFilter(**texts, since=since, until=until), {}


def _cursor(name: str) -> int | None:
    value = request.args.get(name, "")
    return int(value) if value.isdigit() and len(value) < 19 else None


def _page(chosen: AuditFilter) -> tuple[list[AuditEvent], bool, bool]:
    """One page of events, newest first, by keyset on the id ("voor": older than, "na":
    newer than); and whether there are newer and older ones."""
    base = chosen.apply(select(AuditEvent))
    before, after = _cursor("voor"), _cursor("na")
    if after is not None:
        events = list(db().scalars(base.where(AuditEvent.id > after)
                                   .order_by(AuditEvent.id).limit(PAGE_SIZE + 1)))
        has_newer = len(events) > PAGE_SIZE
        events = events[:PAGE_SIZE][::-1]
        has_older = bool(events) and _any(chosen, AuditEvent.id < events[-1].id)
        return events, has_newer, has_older
    if before is not None:
        base = base.where(AuditEvent.id < before)
    events = list(db().scalars(base.order_by(AuditEvent.id.desc()).limit(PAGE_SIZE + 1)))
    has_older = len(events) > PAGE_SIZE
    events = events[:PAGE_SIZE]
    has_newer = bool(events) and _any(chosen, AuditEvent.id > events[0].id)
    return events, has_newer, has_older


def _any(chosen: AuditFilter, condition: Any) -> bool:
    return bool(db().scalar(select(exists(chosen.apply(select(AuditEvent.id))
                                          .where(condition)))))


def local_time(moment: datetime) -> str:
    return f"{moment.astimezone(LOCAL_TIME):%Y-%m-%d %H:%M:%S}"


def details_text(event: AuditEvent) -> str:
    """The details as JSON text (the template escapes it like any other text)."""
    return json.dumps(event.details or {}, ensure_ascii=False, sort_keys=True, default=str)


def _form() -> dict[str, str]:
    return {name: request.args.get(name, "") for name in (*TEXT_FILTERS, "van", "tot")}


def _back_to_log() -> ResponseReturnValue:
    """The log page with the same filters: only the filters' own names go into url_for, whose
    keywords (_external, _scheme, _method, endpoint) a query string must not reach."""
    filters: dict[str, Any] = {name: value for name, value in _form().items() if value}
    return redirect(url_for("admin.audit", **filters))


@bp.get("/audit", endpoint="audit")
@roles_required(Role.ADMIN)
def audit_log() -> ResponseReturnValue:
    """The audit log, newest first, a page at a time; wrong filters say why and keep them."""
    form = _form()
    chosen, errors = parse_filter(request.args)
    if errors:
        return render_template("admin/audit.html", form=form, errors=errors, events=None,
                               query={}), 400
    events, has_newer, has_older = _page(chosen)
    query = {name: value for name, value in form.items() if value}
    return render_template("admin/audit.html", form=form, errors={}, events=events,
                           query=query, has_newer=has_newer, has_older=has_older,
                           local_time=local_time, details_text=details_text,
                           page_size=PAGE_SIZE)


@bp.get("/audit.csv")
@roles_required(Role.ADMIN)
def audit_export() -> ResponseReturnValue:
    """The filtered log as CSV, newest first; the export itself is audited."""
    session = db(write=True)
    chosen, errors = parse_filter(request.args)
    if errors:
        for message in errors.values():
            flash(message, "error")
        return _back_to_log()
    count = session.scalar(chosen.apply(select(func.count(AuditEvent.id)))) or 0
    if count > EXPORT_LIMIT:
        flash(_("Deze selectie telt {count} regels; een export mag er hoogstens {limit} "
                "hebben. Verfijn de filters.", count=count, limit=EXPORT_LIMIT), "error")
        return _back_to_log()
    events = session.scalars(chosen.apply(select(AuditEvent)).order_by(AuditEvent.id.desc())
                             .execution_options(yield_per=2000))
    header = [_("Nummer"), _("Tijdstip (Nederlandse tijd)"), _("Wie"), _("Handeling"),
              _("Soort object"), _("Object"), _("IP-adres"), _("Details")]
    rows = ([str(e.id), local_time(e.at), e.actor, e.verb, e.object_type, e.object_id or "",
             e.ip or "", details_text(e)] for e in events)
    stamp = datetime.now(LOCAL_TIME)
    response = csv_response(header, rows, f"auditlog_{stamp:%Y-%m-%d_%H%M}.csv")
    audit.record(session, "export", "audit_log", user=current_user, ip=request.remote_addr,
                 rows=count, filters={k: str(v) for k, v in asdict(chosen).items() if v})
    return response

