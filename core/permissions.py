"""Who may make, start, end and update which actions: one rule for the console, the municipal
pages, the API and the CLI, asked by the action service (outbound.actions) itself.

An `Actor` is a user or an API key seen as what matters here: its organisation (kind, own
meldkamer, municipality) and its scopes, the action kinds it may make, and whether a national
AMBER Alert is among them. What an organisation's kind allows is the most any of its users or
keys get; a key gets what the administrator chose within that, by default `DEFAULT_SCOPES`.
A municipality's areas stay within its own boundary, with `MUNICIPAL_MARGIN_M` to spare.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from core.errors import BurgernetError
from core.geo import Area, within_boundary
from core.models import (
    Action,
    ActionKind,
    Meldkamer,
    Municipality,
    Organisation,
    OrganisationKind,
    Role,
    Urgency,
    User,
)

#: The scope that allows a national AMBER Alert; every other scope is an action kind's value.
NATIONAL_AMBER = "amber_national"
SCOPES = (*(kind.value for kind in ActionKind), NATIONAL_AMBER)
SEARCH_KINDS = frozenset({ActionKind.SUSPECT, ActionKind.VEHICLE, ActionKind.MISSING_PERSON})
MUNICIPAL_KINDS = frozenset({ActionKind.NEIGHBOURHOOD_INQUIRY, ActionKind.PREVENTIVE})
#: Kinds that are not urgent unless asked (they wait for quiet hours).
NON_URGENT_KINDS = MUNICIPAL_KINDS


def _scopes(kinds: Iterable[ActionKind], *extra: str) -> frozenset[str]:
    return frozenset({kind.value for kind in kinds} | set(extra))


#: The most that users and keys of each kind of organisation may get.
ALLOWED_SCOPES = {
    OrganisationKind.POLICE: frozenset(SCOPES),
    OrganisationKind.MUNICIPALITY: _scopes(MUNICIPAL_KINDS),
    OrganisationKind.FIRE: _scopes({ActionKind.PREVENTIVE}),
    OrganisationKind.AMBULANCE: _scopes({ActionKind.PREVENTIVE}),
}
#: What a new API key gets when the administrator chooses nothing; a national AMBER Alert
#: only when granted explicitly.
DEFAULT_SCOPES = {
    OrganisationKind.POLICE: _scopes(SEARCH_KINDS | {ActionKind.AMBER}),
    OrganisationKind.MUNICIPALITY: _scopes(MUNICIPAL_KINDS),
    OrganisationKind.FIRE: _scopes({ActionKind.PREVENTIVE}),
    OrganisationKind.AMBULANCE: _scopes({ActionKind.PREVENTIVE}),
}
#: What each role may do at most (within what its organisation's kind allows).
ROLE_SCOPES = {
    Role.ADMIN: frozenset(SCOPES),
    Role.CENTRALIST: frozenset(SCOPES),
    Role.MUNICIPALITY_OFFICER: _scopes(MUNICIPAL_KINDS),
}
#: How far a municipality's area may reach across its boundary: the reference boundaries are
#: simplified, and a street on the border should not be cut in half.
MUNICIPAL_MARGIN_M = 500.0

KIND_REFUSED = "Deze soort actie valt buiten uw bevoegdheid."
NATIONAL_REFUSED = "Een landelijke AMBER Alert valt buiten uw bevoegdheid."
URGENT_REFUSED = ("Uw organisatie kan een buurtonderzoek of preventief bericht niet urgent "
                  "maken.")
MELDKAMER_REFUSED = "Deze organisatie maakt alleen acties van haar eigen meldkamer."
NO_MELDKAMER = "Uw organisatie hoort bij geen meldkamer of gemeente; vraag de beheerder."
OTHER_ORGANISATION = "Deze actie is van een andere organisatie."
NO_MUNICIPALITY = "Uw organisatie hoort bij geen gemeente; vraag de beheerder."
NO_BOUNDARY = "De grens van uw gemeente is niet bekend; vraag de beheerder."
AREA_OUTSIDE = (f"Het gebied moet binnen uw gemeente liggen; het mag hoogstens "
                f"{MUNICIPAL_MARGIN_M:.0f} meter over de grens gaan.")


class NotPermitted(BurgernetError, PermissionError):
    """The actor may not do this; ERRORS maps each field to one Dutch message, DETAILS to the
    exact reason (for the CLI, the API and the audit trail)."""

    error_id = "action_not_permitted"

    def __init__(self, errors: dict[str, str], details: dict[str, str]) -> None:
        self.errors = errors
        self.details = details
        super().__init__("; ".join(f"{name}: {details.get(name, message)}"
                                   for name, message in errors.items()))


class AreaOutsideMunicipality(NotPermitted):
    """A municipality's area that reaches beyond its boundary (and the margin)."""

    error_id = "area_outside_municipality"


@dataclass(frozen=True)
class Actor:
    """Who asks: a user, an API key or the command line, as the rules see it.

    MELDKAMER_CODE is the only meldkamer it acts for (None: ANY_MELDKAMER says whether it may
    name any); MUNICIPALITY_ID bounds its areas when BOUNDED; UNRESTRICTED (administrators)
    reaches every organisation's actions. USER and NAME are what the audit trail records.
    """

    organisation_id: int
    organisation_kind: OrganisationKind
    scopes: frozenset[str]
    meldkamer_code: str | None = None
    any_meldkamer: bool = False
    bounded: bool = False
    municipality_id: int | None = None
    unrestricted: bool = False
    user: User | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        """How error details name this actor."""
        return self.name or (self.user.email if self.user else "system")


def meldkamer_for(organisation: Organisation) -> Meldkamer | None:
    """The meldkamer an organisation acts for: a municipality's is that of its safety region,
    any other organisation's its own (None if it has none)."""
    if organisation.municipality is not None:
        return organisation.municipality.safety_region.meldkamer
    return organisation.meldkamer


def _of_organisation(organisation: Organisation, scopes: frozenset[str], *,
                     any_meldkamer: bool, user: User | None = None,
                     name: str | None = None) -> Actor:
    own = meldkamer_for(organisation)
    bounded = organisation.kind == OrganisationKind.MUNICIPALITY
    return Actor(organisation.id, organisation.kind,
                 scopes & ALLOWED_SCOPES[organisation.kind],
                 meldkamer_code=own.code if own else None,
                 any_meldkamer=own is None and any_meldkamer and not bounded,
                 bounded=bounded, municipality_id=organisation.municipality_id,
                 user=user, name=name)


def actor_for_user(user: User) -> Actor:
    """A console user: an administrator may do everything anywhere; anyone else what both
    their role and their organisation's kind allow, for their own meldkamer."""
    organisation = user.organisation
    if user.role == Role.ADMIN:
        return Actor(organisation.id, organisation.kind, frozenset(SCOPES), any_meldkamer=True,
                     unrestricted=True, user=user)
    return _of_organisation(organisation, ROLE_SCOPES[user.role], any_meldkamer=False,
                            user=user)


def actor_for_token(organisation: Organisation, scopes: Iterable[str], name: str) -> Actor:
    """An API key of ORGANISATION with its SCOPES (never more than the kind allows); a key of
    an organisation without a meldkamer of its own (a national unit) names one per action."""
    return _of_organisation(organisation, frozenset(scopes), any_meldkamer=True, name=name)


def actor_for_organisation(organisation: Organisation, name: str = "cli") -> Actor:
    """The organisation itself with all its kind allows: the command line acting for it."""
    return _of_organisation(organisation, ALLOWED_SCOPES[organisation.kind],
                            any_meldkamer=True, name=name)


def may_create(actor: Actor, kind: ActionKind, national: bool = False,
               urgency: Urgency | None = None) -> None:
    """Raise NotPermitted unless ACTOR may make an action of KIND (NATIONAL, URGENCY)."""
    errors: dict[str, str] = {}
    details: dict[str, str] = {}
    if kind.value not in actor.scopes:
        errors["kind"] = KIND_REFUSED
        details["kind"] = (f"{actor.label} may not make {kind.value} actions "
                           f"(scopes: {scope_text(actor.scopes) or 'none'})")
    elif national and kind == ActionKind.AMBER and NATIONAL_AMBER not in actor.scopes:
        errors["national"] = NATIONAL_REFUSED
        details["national"] = f"{actor.label} lacks the scope {NATIONAL_AMBER}"
    if urgency == Urgency.URGENT and kind in NON_URGENT_KINDS and not actor.unrestricted \
            and actor.organisation_kind != OrganisationKind.POLICE:
        errors["urgency"] = URGENT_REFUSED
        details["urgency"] = (f"only the police makes {kind.value} urgent (it would ignore "
                              "quiet hours)")
    if errors:
        raise NotPermitted(errors, details)


def meldkamer_code(actor: Actor, asked: str | None) -> str:
    """The meldkamer an action of ACTOR belongs to: its own, or the one ASKED if it may name
    any; NotPermitted when it asks for another or has none."""
    asked = (asked or "").strip()
    if actor.meldkamer_code and not actor.unrestricted:
        if asked and asked != actor.meldkamer_code:
            raise NotPermitted({"meldkamer": MELDKAMER_REFUSED}, {
                "meldkamer": f"{asked} is not {actor.meldkamer_code}, the organisation's own"})
        return actor.meldkamer_code
    if actor.any_meldkamer or actor.unrestricted:
        return asked or (actor.meldkamer_code or "")
    raise NotPermitted({"meldkamer": NO_MELDKAMER},
                       {"meldkamer": "the organisation has no meldkamer of its own"})


def check_area(session: Session, actor: Actor, area: Area | None) -> None:
    """Raise NotPermitted unless AREA (None: the whole country) lies within a bounded
    actor's municipality, MUNICIPAL_MARGIN_M metres across its boundary at most."""
    if not actor.bounded or actor.unrestricted:
        return
    municipality = session.get(Municipality, actor.municipality_id) \
        if actor.municipality_id is not None else None
    if municipality is None:
        raise NotPermitted({"area": NO_MUNICIPALITY},
                           {"area": "the organisation is of kind municipality but has none"})
    if municipality.boundary is None:
        raise NotPermitted({"area": NO_BOUNDARY},
                           {"area": f"no boundary loaded for {municipality.code}"})
    if area is None or not within_boundary(area, municipality.boundary, MUNICIPAL_MARGIN_M):
        raise AreaOutsideMunicipality({"area": AREA_OUTSIDE}, {
            "area": f"the area reaches more than {MUNICIPAL_MARGIN_M:.0f} m beyond the "
                    f"boundary of {municipality.name} ({municipality.code})"})


def may_manage(actor: Actor, action: Action) -> None:
    """Raise NotPermitted unless ACTOR may end or update ACTION: one of its organisation's,
    of a kind it may make (an administrator: any)."""
    _own_organisation(actor, action)
    may_create(actor, action.kind)


def may_start(session: Session, actor: Actor, action: Action, area: Area | None) -> None:
    """Raise NotPermitted unless ACTOR may start ACTION as it stands (with AREA, None when
    national): what `create_action` asked, asked again, for a draft made before a rule."""
    _own_organisation(actor, action)
    may_create(actor, action.kind, action.national, action.urgency)
    meldkamer_code(actor, action.meldkamer.code)
    check_area(session, actor, area)


def _own_organisation(actor: Actor, action: Action) -> None:
    if not actor.unrestricted and action.organisation_id != actor.organisation_id:
        raise NotPermitted({"organisation": OTHER_ORGANISATION}, {
            "organisation": f"action {action.id} belongs to organisation "
                            f"{action.organisation_id}, not {actor.organisation_id}"})


def scope_text(scopes: Iterable[str]) -> str:
    """SCOPES as stored on a key: space-separated (as OAuth's scope), in SCOPES order."""
    chosen = set(scopes)
    return " ".join(scope for scope in SCOPES if scope in chosen)


def parse_scopes(text: str | None) -> frozenset[str]:
    """The scopes stored on a key; unknown words (from a newer version) are ignored."""
    return frozenset(word for word in (text or "").split() if word in SCOPES)
