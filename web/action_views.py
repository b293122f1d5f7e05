"""What the staff pages (the console's and the municipal pages') do the same way around the
action service: start and end an action from a button, make any other change of it, create a
draft, and one mapping of the service's refusals to what a page answers.

A view checks access (its decorator), loads the action (another organisation's is a 404),
and hands over with what its page says (`Says`); the service (outbound.actions) decides, and
`refused` turns a refusal into the answer. Every answer but a form shown again goes back to
the action's page: the endpoint `show` of the view's own blueprint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from flask import flash, redirect, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from core.models import Action, ActionStatus, Outcome, User
from core.permissions import Actor, NotPermitted, actor_for_user
from outbound.actions import (
    ActionDraft,
    ActionInvalid,
    create_action,
    end_and_queue,
    start_for_request,
)
from outbound.fanout import ActionError
from web.auth import acting_user, record_refusal
from web.context import runtime, writer

#: What the action service raises when it refuses (or cannot queue) a change.
REFUSALS = (NotPermitted, ActionInvalid, ActionError, redis.RedisError)


@dataclass(frozen=True)
class Says:
    """What a page says about one change of an action (Dutch; flashes are translated when
    they are shown)."""

    done: str
    #: The service's ActionError: the action is not (or no longer) in a state for this.
    conflict: str
    #: No queue (Redis) is configured.
    no_queue: str = ""
    #: The change is stored but the queue did not answer (the worker catches up); where it
    #: is empty, the error is not caught.
    queue_down: str = ""
    #: A change that had been made before (a second start): nothing was done again.
    again: str = ""
    #: An end asked of a draft.
    not_started: str = ""


@dataclass(frozen=True)
class FormPage:
    """The page again with its form and the field errors (its answer says 400), for the
    refusals it TAKES; the others are flashed over the action's page."""

    render: Callable[[dict[str, str]], ResponseReturnValue]
    takes: tuple[type[Exception], ...] = (ActionInvalid, NotPermitted)


def now() -> datetime:
    """The time the staff pages act at."""
    return datetime.now(UTC)


def acting_actor() -> Actor:
    """The logged-in user as the permission rules see them."""
    return actor_for_user(acting_user())


def session_actor(session: Session) -> Actor:
    """The logged-in user as the permission rules see them, loaded in SESSION (the audit
    event of a change made in SESSION names that user)."""
    user = session.get(User, current_user.id)
    assert user is not None
    return actor_for_user(user)


def back(action: Action, *errors: str) -> Response:
    """The action's page, with ERRORS flashed."""
    for message in errors:
        flash(message, "error")
    return redirect(url_for(".show", action_id=action.id))


def start(action: Action, says: Says) -> ResponseReturnValue:
    """Start ACTION for the logged-in user (see `start_for_request`); a second start sends
    nothing again."""
    connection = runtime().redis
    if connection is None:
        return back(action, says.no_queue)
    return change(action, says, lambda: start_for_request(
        writer(), connection, action.id, now=now(), who=acting_actor()))


def end(action: Action, says: Says, outcome: Outcome | str, text: str | None,
        form: FormPage | None = None) -> ResponseReturnValue:
    """End ACTION with OUTCOME, and TEXT to everyone it reached; only an active action
    ends."""
    if action.status != ActionStatus.ACTIVE:
        return back(action, says.conflict if action.status == ActionStatus.ENDED else
                    says.not_started)
    connection = runtime().redis
    if connection is None:
        return form.render({"outcome": says.no_queue}) if form else back(action, says.no_queue)
    return change(action, says, lambda: end_and_queue(
        writer(), connection, action.id, outcome, text, now=now(), who=acting_actor()),
        form)


def change(action: Action, says: Says, service: Callable[[], object],
           form: FormPage | None = None, then: str | None = None) -> ResponseReturnValue:
    """Change ACTION through SERVICE, then say so on the action's page (or the URL THEN); a
    SERVICE that answers False had done it before. A refusal is answered by `refused`."""
    try:
        result = service()
    except REFUSALS as exc:
        return refused(exc, action, says, form)
    flash(says.again if result is False else says.done)
    return redirect(then) if then else back(action)


def refused(exc: Exception, action: Action, says: Says,
            form: FormPage | None = None) -> ResponseReturnValue:
    """The one mapping of the action service's refusals to a page's answer: a permission
    refusal goes to the audit trail; its reasons, like an invalid input's, go to the FORM when
    it takes them, else they are flashed; a conflict or a queue that did not answer is said
    as SAYS says it. Anything else is raised again."""
    if isinstance(exc, NotPermitted):
        record_refusal(exc, action.id)
    if isinstance(exc, NotPermitted | ActionInvalid):
        if form is not None and isinstance(exc, form.takes):
            return form.render(exc.errors)
        return back(action, *exc.errors.values())
    if isinstance(exc, ActionError):
        return back(action, says.conflict)
    if isinstance(exc, redis.RedisError) and says.queue_down:
        return back(action, says.queue_down)
    raise exc


class Refused(Exception):
    """Rolls a draft's transaction back: ERRORS go to the form, a REFUSAL of the permission
    rules to the audit trail (`recorded`)."""

    def __init__(self, errors: dict[str, str], refusal: NotPermitted | None = None) -> None:
        super().__init__(errors)
        self.errors = errors
        self.refusal = refusal

    def recorded(self, action_id: int | None = None) -> dict[str, str]:
        """The errors for the form, once a refusal is kept in the audit trail."""
        if self.refusal is not None:
            record_refusal(self.refusal, action_id)
        return self.errors


def create_draft(session: Session, actor: Actor, draft: ActionDraft, errors: Mapping[str, str],
                 fields: Mapping[str, str] | None = None) -> Action:
    """`create_action` in SESSION for ACTOR, the form's own ERRORS included: Refused names
    every wrong field at once (FIELDS: the service's field names as the form calls them)."""
    try:
        action = create_action(session, draft, actor)
    except (ActionInvalid, NotPermitted) as exc:
        raise Refused({**_renamed(exc.errors, fields or {}), **errors},
                      exc if isinstance(exc, NotPermitted) else None) from None
    if errors:
        raise Refused(dict(errors))
    return action


def _renamed(errors: Mapping[str, str], fields: Mapping[str, str]) -> dict[str, str]:
    return {fields.get(name, name): message for name, message in errors.items()}

