"""The participant portal: sign up with a mobile number and postcode, confirm it with an SMS
code, log in later the same way, and manage one's participation (`web.portal_account`).

Nothing here tells whether a number is registered: signing up a known number, logging in
with an unknown one and every code limit answer alike. Codes go out as RQ jobs on the SMS
queue (`outbound.codes`), so the SMS sender's rate holds for them too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import redis
from flask import (
    Response,
    flash,
    redirect,
    render_template,
    request,
    send_from_directory,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue

from core import audit
from core.models import Language
from core.participants import (
    CODE_TTL,
    CodeToSend,
    TooManyCodes,
    VerificationFailed,
    log_in,
    register,
    request_login_code,
)
from core.participants import verify as confirm_signup
from outbound.codes import enqueue_code
from web import portal_account as _account  # noqa: F401  (its views are the portal's too)
from web.context import db, runtime
from web.i18n import current_language, translate
from web.portal_forms import CodeForm, LoginForm, SignupForm
from web.portal_session import (
    PENDING,
    begin,
    bp,
    code_requests,
    current_participant,
    end_everywhere,
    national,
    now,
    reset_session,
    secret,
)
from web.steady import steady

__all__ = ["bp"]

STATIC = Path(__file__).parent / "static" / "portal"
REFUSALS = {
    "wait": "U heeft net een code gevraagd. Wacht een minuut voordat u een nieuwe vraagt.",
    "today": "Voor dit nummer zijn vandaag te veel codes gevraagd. Probeer het morgen opnieuw.",
    "client": "Vanaf deze verbinding zijn te veel codes gevraagd. Probeer het over een uur "
              "opnieuw.",
    "budget": "Er worden nu uitzonderlijk veel codes gevraagd, daarom sturen wij even geen "
              "sms. Probeer het over een uur opnieuw.",
}
NO_SMS = "Wij kunnen nu geen sms versturen. Probeer het over een paar minuten opnieuw."


@bp.get("/")
def index() -> ResponseReturnValue:
    """What the portal is for, and the way in."""
    if current_participant() is not None:
        return redirect(url_for("portal.mine"))
    return render_template("portal/index.html")


@bp.route("/aanmelden", methods=["GET", "POST"])
def signup() -> ResponseReturnValue:
    """Mobile number, home postcode, language and consent; then a code by SMS."""
    if request.method == "POST":
        db(write=True)
    form = SignupForm()
    if request.method == "GET":
        form.language.data = current_language()
    if not form.validate_on_submit():
        status = 200 if request.method == "GET" else 400
        return render_template("portal/signup.html", form=form), status
    try:
        _send_code(form.e164, "signup", _signup_of(form.e164, form.area.pc4, form.language.data),
                   {"pc4": form.area.pc4, "language": form.language.data})
    except CodeRefused as refused:
        return render_template("portal/signup.html", form=form,
                               error=refused.message), refused.status
    return redirect(url_for("portal.verify"))


@bp.route("/inloggen", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """A code to the number, if it is registered; the answer is the same if it is not."""
    if request.method == "POST":
        db(write=True)
    form = LoginForm()
    if not form.validate_on_submit():
        status = 200 if request.method == "GET" else 400
        return render_template("portal/login.html", form=form), status
    try:
        _send_code(form.e164, "login", lambda: request_login_code(
            db(), form.e164, secret=secret(), now=now()))
    except CodeRefused as refused:
        return render_template("portal/login.html", form=form,
                               error=refused.message), refused.status
    return redirect(url_for("portal.verify"))


class CodeRefused(Exception):
    """No code goes out now; the message (translated) and the HTTP status say why."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def _signup_of(phone: str, pc4: str, language: str) -> Callable[[], CodeToSend]:
    """Sign PHONE up (again: an unconfirmed sign-up is purged when its code expires)."""
    return lambda: register(db(), phone, secret=secret(), now=now(), language=Language(language),
                            pc4=pc4, allow_fictional=False)


def _send_code(phone: str, purpose: str, issue: Callable[[], CodeToSend | None],
               signup: dict[str, str] | None = None) -> None:
    """Issue a code and queue its SMS, within the limits; CodeRefused if not. SIGNUP (the
    postcode and language) is kept with the pending code, for a new code to sign up again."""
    limits = code_requests()
    if limits is None:
        raise CodeRefused(translate(NO_SMS), 503)
    try:
        refusal = limits.admit(phone, request.remote_addr, at=now().timestamp())
        if refusal is not None:
            runtime().metrics.refused(refusal)
        if refusal in {"budget", "budget-first"}:
            if refusal == "budget-first":
                audit.record(db(), "code_budget_spent", "portal", actor="system",
                             budget=limits.budget, purpose=purpose)
            raise CodeRefused(translate(REFUSALS["budget"]), 503)
        if refusal is not None:
            raise CodeRefused(translate(REFUSALS[refusal]), 429)
        with steady():  # a known number's code is written and queued, an unknown one's not
            try:
                sent = issue()
            except TooManyCodes:
                if purpose == "signup":
                    raise CodeRefused(translate(REFUSALS["wait"]), 429) from None
                sent = None  # the earlier code stands; saying so would tell it is known
            if sent is not None:
                enqueue_code(limits.connection, secret(), sent)
            limits.issued(phone)
            db().commit()
    except redis.RedisError:
        db().rollback()
        raise CodeRefused(translate(NO_SMS), 503) from None
    session[PENDING] = {"phone": phone, "purpose": purpose, "sent_at": int(time.time()),
                        **(signup or {})}


@bp.route("/code", methods=["GET", "POST"])
def verify() -> ResponseReturnValue:
    """The code from the SMS: on success the participant is verified and logged in."""
    pending = session.get(PENDING)
    if not isinstance(pending, dict):
        flash("Vraag eerst een code aan.")
        return redirect(url_for("portal.login"))
    if request.method == "POST":
        db(write=True)
    form = CodeForm()
    error, renew = None, False
    if form.validate_on_submit():
        error, renew = _check(pending, form.code.data.strip())
        if error is None:
            return redirect(url_for("portal.mine"))
    status = 200 if request.method == "GET" else 400
    return render_template("portal/verify.html", form=form, error=error, renew=renew,
                           purpose=pending["purpose"], number=national(pending["phone"]),
                           minutes=int(CODE_TTL.total_seconds() // 60)), status


def _check(pending: dict[str, object], code: str) -> tuple[str | None, bool]:
    """(error, whether a new code is needed); no error means logged in."""
    phone, purpose = str(pending["phone"]), pending["purpose"]
    if time.time() - float(pending["sent_at"]) > CODE_TTL.total_seconds():  # type: ignore[arg-type]
        return translate("Deze code is verlopen. Vraag een nieuwe code aan."), True
    limits = code_requests()
    if _guesses(lambda: limits.left(phone) if limits else None) == 0:
        return translate(USED_UP), True
    check = confirm_signup if purpose == "signup" else log_in
    try:
        with steady():  # a wrong code is counted in a known number's row only
            try:
                participant = check(db(), phone, code, secret=secret(), now=now())
            except VerificationFailed:
                db().commit()  # that count, within the steady time
                raise
    except VerificationFailed:
        left = _guesses(lambda: limits.failed(phone) if limits else None)
        if left == 0:
            return translate(USED_UP), True
        if left is None:
            return translate("Deze code klopt niet."), False
        return translate("Deze code klopt niet. U kunt het nog {left} keer proberen.",
                         left=left), False
    _guesses(lambda: limits.issued(phone) if limits else None)
    first = purpose == "signup"
    begin(participant)
    flash("Welkom bij Burgernet! Uw nummer is bevestigd." if first else "U bent ingelogd.")
    return None, False


def _guesses(count: Callable[[], int | None]) -> int | None:
    """The guesses left by COUNT, or None when Redis cannot say (the core still limits)."""
    try:
        return count()
    except redis.RedisError:
        return None


USED_UP = "Deze code klopt niet en is nu ongeldig. Vraag een nieuwe code aan."


@bp.post("/code/opnieuw")
def resend() -> ResponseReturnValue:
    """A new code for the number asked for before (again only if it is registered)."""
    pending = session.get(PENDING)
    if not isinstance(pending, dict):
        flash("Vraag eerst een code aan.")
        return redirect(url_for("portal.login"))
    db(write=True)
    phone, purpose = str(pending["phone"]), str(pending["purpose"])
    signup = {key: str(pending[key]) for key in ("pc4", "language") if key in pending}
    issue: Callable[[], CodeToSend | None] = (
        _signup_of(phone, signup["pc4"], signup["language"]) if len(signup) == 2
        else lambda: request_login_code(db(), phone, secret=secret(), now=now()))
    try:
        _send_code(phone, purpose, issue, signup or None)
    except CodeRefused as refused:
        flash(refused.message, "error")
    else:
        flash("Wij hebben een nieuwe code gestuurd." if purpose == "signup" else
              "Als dit nummer bij Burgernet is aangemeld, is er een nieuwe code onderweg.")
    return redirect(url_for("portal.verify"))


@bp.post("/uitloggen")
def logout() -> ResponseReturnValue:
    """End the participant's session (and everything else in it)."""
    db(write=True)
    participant = current_participant()
    if participant is not None:
        audit.record(db(), "log_out", "participant", participant.id,
                     actor=f"participant:{participant.id}")
        end_everywhere(participant)
    reset_session()
    flash("U bent uitgelogd.")
    return redirect(url_for("portal.index"))


@bp.get("/sw.js")
def service_worker() -> Response:
    """The service worker for app notifications, at a path whose scope is the portal."""
    response = send_from_directory(STATIC, "sw.js", mimetype="text/javascript",
                                   max_age=0)
    response.headers["Service-Worker-Allowed"] = url_for("portal.index")
    response.headers["Cache-Control"] = "no-cache"
    return response

