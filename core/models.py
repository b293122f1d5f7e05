"""The domain model: SQLAlchemy 2.0 typed mappings, portable between SQLite and PostgreSQL."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _enum(cls: type[enum.Enum]) -> Enum:
    """Enums stored as their string values in a plain VARCHAR with a CHECK constraint."""
    return Enum(cls, native_enum=False, create_constraint=True, length=24,
                values_callable=lambda members: [m.value for m in members],
                validate_strings=True, name=cls.__name__.lower())


#: Table options of the tables whose ids leave the database (session cookies, signed links, the
#: audit trail, queued jobs, URLs): a deleted row's id is never given to a new row, so what
#: still names the old row cannot reach the new one. PostgreSQL's sequences never go back;
#: SQLite needs AUTOINCREMENT, without which it reuses the highest id after a delete.
NEVER_REUSED = {"sqlite_autoincrement": True}
#: The largest id a table hands out: ids are INTEGER columns, 32-bit on PostgreSQL. An id from
#: outside beyond it is no row's (and beyond 64 bits SQLite cannot even compare it).
MAX_ID = 2**31 - 1


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime()}


# --- vocabularies ---------------------------------------------------------------------

class OrganisationKind(enum.StrEnum):
    POLICE = "police"
    MUNICIPALITY = "municipality"
    FIRE = "fire"
    AMBULANCE = "ambulance"


class Role(enum.StrEnum):
    ADMIN = "admin"
    CENTRALIST = "centralist"
    MUNICIPALITY_OFFICER = "municipality_officer"


class Language(enum.StrEnum):
    NL = "nl"
    EN = "en"


class Channel(enum.StrEnum):
    VOICE = "voice"
    SMS = "sms"
    EMAIL = "email"
    PUSH = "push"

    @property
    def bit(self) -> int:
        return CHANNEL_BITS[self]


CHANNEL_BITS = {Channel.VOICE: 1, Channel.SMS: 2, Channel.EMAIL: 4, Channel.PUSH: 8}


def channel_mask(channels: list[Channel] | set[Channel] | tuple[Channel, ...]) -> int:
    """The bit mask stored in Participant.channels for a set of channels."""
    mask = 0
    for channel in channels:
        mask |= Channel(channel).bit
    return mask


class ParticipantStatus(enum.StrEnum):
    PENDING = "pending"
    VERIFIED = "verified"
    STOPPED = "stopped"


class LocationKind(enum.StrEnum):
    HOME = "home"
    WORK = "work"
    CURRENT = "current"


class ActionKind(enum.StrEnum):
    SUSPECT = "suspect"
    VEHICLE = "vehicle"
    MISSING_PERSON = "missing_person"
    AMBER = "amber"
    NEIGHBOURHOOD_INQUIRY = "neighbourhood_inquiry"
    PREVENTIVE = "preventive"


class Urgency(enum.StrEnum):
    URGENT = "urgent"
    NORMAL = "normal"


class ActionStatus(enum.StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    ENDED = "ended"


class Outcome(enum.StrEnum):
    FOUND = "found"
    ARRESTED = "arrested"
    NOT_FOUND = "not_found"
    CANCELLED = "cancelled"


class DeliveryPurpose(enum.StrEnum):
    ALERT = "alert"
    RESULT = "result"
    UPDATE = "update"


class DeliveryStatus(enum.StrEnum):
    QUEUED = "queued"
    #: Claimed by a worker, whose lease (`next_attempt_at`) it renews while it works.
    SENDING = "sending"
    #: Handed to the provider with no answer (a timeout, a connection reset), or left in
    #: `sending` by a worker that died: looked up at the provider before any new attempt
    #: (`outbound.reclaim`), from `updated_at` (the attempt's start) on, once
    #: `next_attempt_at` has passed.
    UNKNOWN = "unknown"
    SENT = "sent"
    DELIVERED = "delivered"
    #: A voice message taken by a person.
    ANSWERED = "answered"
    #: A voice message left on an answering machine after its beep (Twilio's AnsweredBy).
    VOICEMAIL = "voicemail"
    FAILED = "failed"
    SKIPPED = "skipped"


class CallDirection(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


# --- reference data -------------------------------------------------------------------

class Meldkamer(Base):
    """A regional dispatch centre; callers are put through to its number or SIP URI."""

    __tablename__ = "meldkamer"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(4), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    police_unit: Mapped[str] = mapped_column(String(120))
    phone: Mapped[str | None] = mapped_column(String(20))
    sip_uri: Mapped[str | None] = mapped_column(String(255))
    fallback_id: Mapped[int | None] = mapped_column(ForeignKey("meldkamer.id"))

    fallback: Mapped[Meldkamer | None] = relationship(remote_side=[id])
    safety_regions: Mapped[list[SafetyRegion]] = relationship(back_populates="meldkamer")


class SafetyRegion(Base):
    """One of the 25 veiligheidsregio's, each run from one meldkamer."""

    __tablename__ = "safety_region"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(4), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    meldkamer_id: Mapped[int] = mapped_column(ForeignKey("meldkamer.id"))

    meldkamer: Mapped[Meldkamer] = relationship(back_populates="safety_regions")
    municipalities: Mapped[list[Municipality]] = relationship(back_populates="safety_region")


class Municipality(Base):
    """A gemeente by CBS code, with its inhabitants (CBS, 1 January 2021) from the reference data;
    the province stays empty until a source provides it."""

    __tablename__ = "municipality"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(6), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    province: Mapped[str | None] = mapped_column(String(40))
    population: Mapped[int | None] = mapped_column(Integer)
    safety_region_id: Mapped[int] = mapped_column(ForeignKey("safety_region.id"), index=True)
    centroid_lat: Mapped[float] = mapped_column(Float)
    centroid_lon: Mapped[float] = mapped_column(Float)
    boundary: Mapped[dict[str, Any] | None] = mapped_column(JSON, deferred=True)

    safety_region: Mapped[SafetyRegion] = relationship(back_populates="municipalities")


class Postcode(Base):
    """A four-digit postcode area: a point inside its municipality, the municipality, the rule
    that decided it (`assignment`, see core/data/README.md) and its inhabitants (CBS, 1 January
    2021; 0 for PO-box ranges and codes newer than the count)."""

    __tablename__ = "postcode"

    pc4: Mapped[str] = mapped_column(String(4), primary_key=True)
    place: Mapped[str] = mapped_column(String(120))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipality.id"), index=True)
    assignment: Mapped[str] = mapped_column(String(32))
    population: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    municipality: Mapped[Municipality] = relationship()


# --- people ---------------------------------------------------------------------------

class Organisation(Base):
    """A police unit, municipality, fire or ambulance service whose users work here."""

    __tablename__ = "organisation"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[OrganisationKind] = mapped_column(_enum(OrganisationKind))
    name: Mapped[str] = mapped_column(String(160), unique=True)
    meldkamer_id: Mapped[int | None] = mapped_column(ForeignKey("meldkamer.id"))
    municipality_id: Mapped[int | None] = mapped_column(ForeignKey("municipality.id"))

    meldkamer: Mapped[Meldkamer | None] = relationship()
    municipality: Mapped[Municipality | None] = relationship()


class User(Base):
    """Someone who works in the console: an admin, a centralist or a municipality officer."""

    __tablename__ = "user_account"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(160))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(_enum(Role))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    #: Every web session of this user carries it; replaced or cleared (log-out, new password)
    #: it ends them all, wherever they are.
    session_key: Mapped[str | None] = mapped_column(String(64))

    organisation: Mapped[Organisation] = relationship()

    # The four members a web session needs of a user (Flask-Login's protocol, without Flask).
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        """The id a web session keeps: the row and the session key, so that a new key ends
        every session made with the old one."""
        return f"{self.id}:{self.session_key or ''}"


class Participant(Base):
    """A registered citizen: only what is needed to reach them, no name."""

    __tablename__ = "participant"
    __table_args__ = (CheckConstraint("channels >= 0 AND channels < 16", name="channels_mask"),
                      NEVER_REUSED)

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(String(20), unique=True)
    email: Mapped[str | None] = mapped_column(String(254))
    language: Mapped[Language] = mapped_column(_enum(Language), default=Language.NL)
    channels: Mapped[int] = mapped_column(Integer, default=CHANNEL_BITS[Channel.SMS])
    #: {"sms": ["22:00", "07:00"], ...}: per channel, a daily window without non-urgent messages.
    quiet_hours: Mapped[dict[str, list[str]]] = mapped_column(JSON, default=dict)
    status: Mapped[ParticipantStatus] = mapped_column(
        _enum(ParticipantStatus), default=ParticipantStatus.PENDING, index=True)
    consent_at: Mapped[datetime | None]
    verified_at: Mapped[datetime | None]
    stopped_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: The pending SMS verification: a keyed hash of the code, never the code itself.
    code_hash: Mapped[str | None] = mapped_column(String(64))
    code_expires_at: Mapped[datetime | None]
    code_attempts: Mapped[int] = mapped_column(default=0)
    code_sent_at: Mapped[datetime | None]
    code_sends: Mapped[int] = mapped_column(default=0)
    #: Every portal session of this participant carries it; cleared at log-out, it ends them all.
    session_key: Mapped[str | None] = mapped_column(String(64))

    locations: Mapped[list[ParticipantLocation]] = relationship(
        back_populates="participant", cascade="all, delete-orphan")

    def has_channel(self, channel: Channel) -> bool:
        return bool(self.channels & Channel(channel).bit)


class ParticipantLocation(Base):
    """Where a participant wants to be reached: home, work, or a current place that expires."""

    __tablename__ = "participant_location"
    __table_args__ = (
        # The area query's indexes live outside the ORM, made by the migrations per database:
        # SQLite ix_participant_location_cell on (CAST(lon * 20 AS INTEGER), lat, lon,
        # participant_id, municipality_id, expires_at, status, channels, language), which
        # covers it (0005); PostgreSQL the GiST index on geom, the table clustered on it (0002,
        # 0005).
        CheckConstraint("lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180", name="coordinates"),
        # participants per municipality (statistics) read only the index (0007)
        Index("ix_participant_location_home_verified", "municipality_id",
              sqlite_where=text("kind = 'home' AND status = 'verified'"),
              postgresql_where=text("kind = 'home' AND status = 'verified'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(
        ForeignKey("participant.id", ondelete="CASCADE"), index=True)
    kind: Mapped[LocationKind] = mapped_column(_enum(LocationKind))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    country: Mapped[str] = mapped_column(String(2), default="NL")
    pc4: Mapped[str | None] = mapped_column(String(4))
    municipality_id: Mapped[int | None] = mapped_column(ForeignKey("municipality.id"), index=True)
    expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Copies of the participant's status, channels and language, written by database triggers
    # (migration 0002) and never by code: the urgent area query then needs no join.
    status: Mapped[str | None] = mapped_column(String(24))
    channels: Mapped[int | None] = mapped_column(Integer)
    language: Mapped[str | None] = mapped_column(String(2))

    participant: Mapped[Participant] = relationship(back_populates="locations")
    municipality: Mapped[Municipality | None] = relationship()


class PushSubscription(Base):
    """A browser's or app's Web Push subscription (RFC 8030/8291): where and how to encrypt.

    The endpoint is a capability URL at the browser vendor's push service; p256dh and auth
    (base64url, unpadded) are the keys the payload is encrypted to. A subscription the push
    service calls gone (404/410) is disabled, not deleted, so the portal can tell the
    participant why a device went quiet."""

    __tablename__ = "push_subscription"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(
        ForeignKey("participant.id", ondelete="CASCADE"), index=True)
    endpoint: Mapped[str] = mapped_column(String(1024), unique=True)
    p256dh: Mapped[str] = mapped_column(String(100))
    auth: Mapped[str] = mapped_column(String(32))
    #: The browser's user agent, or a name the participant gave the device.
    label: Mapped[str | None] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_success_at: Mapped[datetime | None]
    #: Failed sends since the last success.
    failures: Mapped[int] = mapped_column(default=0)
    disabled_at: Mapped[datetime | None]

    participant: Mapped[Participant] = relationship()


# --- actions and what they cause ------------------------------------------------------

class Action(Base):
    """A search action, AMBER Alert, inquiry or preventive message, with the area it covers."""

    __tablename__ = "action"
    __table_args__ = (
        CheckConstraint("radius_m IS NULL OR radius_m > 0", name="radius_positive"),
        CheckConstraint(
            "(radius_m IS NULL) = (center_lat IS NULL) "
            "AND (center_lat IS NULL) = (center_lon IS NULL)",
            name="circle_complete"),
        NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[ActionKind] = mapped_column(_enum(ActionKind))
    urgency: Mapped[Urgency] = mapped_column(_enum(Urgency))
    status: Mapped[ActionStatus] = mapped_column(
        _enum(ActionStatus), default=ActionStatus.DRAFT, index=True)
    title_nl: Mapped[str] = mapped_column(String(200))
    title_en: Mapped[str | None] = mapped_column(String(200))
    description_nl: Mapped[str] = mapped_column(Text, default="")
    description_en: Mapped[str | None] = mapped_column(Text)
    instruction_nl: Mapped[str] = mapped_column(Text, default="")
    instruction_en: Mapped[str | None] = mapped_column(Text)
    center_lat: Mapped[float | None] = mapped_column(Float)
    center_lon: Mapped[float | None] = mapped_column(Float)
    radius_m: Mapped[float | None] = mapped_column(Float)
    polygon: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    meldkamer_id: Mapped[int] = mapped_column(ForeignKey("meldkamer.id"), index=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    creator_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    outcome: Mapped[Outcome | None] = mapped_column(_enum(Outcome))
    outcome_text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    #: Set when the whole outbox is written; an active action without it is resumed.
    outbox_done_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    #: An AMBER Alert for the whole country: the area is the Netherlands, not a circle.
    national: Mapped[bool] = mapped_column(default=False)
    #: A photo of the subject, stripped of metadata, under var/media/actions; centralists only.
    photo_path: Mapped[str | None] = mapped_column(String(255))
    photo_type: Mapped[str | None] = mapped_column(String(64))
    #: The follow-up an inquiry sends to the same recipients (nl, en).
    update_nl: Mapped[str | None] = mapped_column(Text)
    update_en: Mapped[str | None] = mapped_column(Text)

    meldkamer: Mapped[Meldkamer] = relationship()
    organisation: Mapped[Organisation] = relationship()
    creator: Mapped[User | None] = relationship()


class Delivery(Base):
    """One message of one purpose to one participant over one channel: the outbox row."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("action_id", "participant_id", "channel", "purpose",
                         name="uq_delivery_once"),
        Index("ix_delivery_action_status", "action_id", "status"),
        #: The sweeps every few seconds: expired leases, outcomes to look up, the refill.
        Index("ix_delivery_status_due", "status", "next_attempt_at"),
        NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("action.id"))
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id", ondelete="CASCADE"),
                                                index=True)
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    purpose: Mapped[DeliveryPurpose] = mapped_column(
        _enum(DeliveryPurpose), default=DeliveryPurpose.ALERT)
    language: Mapped[Language] = mapped_column(_enum(Language), default=Language.NL)
    status: Mapped[DeliveryStatus] = mapped_column(
        _enum(DeliveryStatus), default=DeliveryStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    provider: Mapped[str | None] = mapped_column(String(32))
    provider_id: Mapped[str | None] = mapped_column(String(64), index=True)
    provider_error: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    next_attempt_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]

    action: Mapped[Action] = relationship()
    participant: Mapped[Participant] = relationship()


class CallRecord(Base):
    """Every call in or out, with why it went where it went.

    One record per call: a webhook replayed with the same call id finds the record it made."""

    __tablename__ = "call_record"
    __table_args__ = (UniqueConstraint("provider_call_id", "transport", "direction",
                                       name="uq_call_record_call"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    direction: Mapped[CallDirection] = mapped_column(_enum(CallDirection))
    transport: Mapped[str] = mapped_column(String(16))
    provider_call_id: Mapped[str | None] = mapped_column(String(64), index=True)
    caller: Mapped[str | None] = mapped_column(String(40))
    called: Mapped[str | None] = mapped_column(String(255))
    participant_id: Mapped[int | None] = mapped_column(
        ForeignKey("participant.id", ondelete="SET NULL"))
    meldkamer_id: Mapped[int | None] = mapped_column(ForeignKey("meldkamer.id"))
    action_id: Mapped[int | None] = mapped_column(ForeignKey("action.id"), index=True)
    routing_reason: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None]
    connected_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(32))

    meldkamer: Mapped[Meldkamer | None] = relationship()
    action: Mapped[Action | None] = relationship()


class Tip(Base):
    """What a participant reports on an action: text and media, for centralists only.

    A tip by SMS or MMS keeps the provider's message id, part 0 for the text or first photo,
    1, 2, ... for further photos: a replayed message cannot add a tip twice."""

    __tablename__ = "tip"
    __table_args__ = (UniqueConstraint("message_sid", "message_part", name="uq_tip_message"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("action.id"), index=True)
    participant_id: Mapped[int | None] = mapped_column(
        ForeignKey("participant.id", ondelete="SET NULL"))
    source: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text, default="")
    media_path: Mapped[str | None] = mapped_column(String(255))
    media_type: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    message_sid: Mapped[str | None] = mapped_column(String(64))
    message_part: Mapped[int] = mapped_column(default=0, server_default="0")

    action: Mapped[Action] = relationship()


class InquiryReaction(Base):
    """A recipient's answer to a neighbourhood inquiry, given through the personal link."""

    __tablename__ = "inquiry_reaction"

    id: Mapped[int] = mapped_column(primary_key=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("action.id"), index=True)
    #: One reaction per e-mail sent; the link belongs to that delivery only.
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("delivery.id", ondelete="CASCADE"), unique=True)
    text: Mapped[str] = mapped_column(Text)
    #: A way back to the reactor, only when they chose to leave one.
    contact: Mapped[str | None] = mapped_column(String(254))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)

    action: Mapped[Action] = relationship()


class ApiToken(Base):
    """A bearer token of the dispatch system: acts for one organisation; only its hash is kept."""

    __tablename__ = "api_token"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    #: What the key may make, space-separated (core.permissions.SCOPES); empty: nothing.
    scopes: Mapped[str] = mapped_column(String(255), default="", server_default="")
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    organisation: Mapped[Organisation] = relationship()


class AuditEvent(Base):
    """Who did what to which object, and when: written for every state change."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_object", "object_type", "object_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(160))
    verb: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ip: Mapped[str | None] = mapped_column(String(45))
