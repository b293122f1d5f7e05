"""Progress of an action: counts by channel and status, the current rate, and a forecast."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.models import Channel, Delivery, DeliveryStatus
from core.settings import Settings


def channel_rate(settings: Settings, channel: Channel) -> float:
    """The configured messages (or calls) per second of CHANNEL's sender; 0: no limit."""
    return {Channel.VOICE: settings.voice_rate, Channel.SMS: settings.sms_rate,
            Channel.EMAIL: settings.email_rate, Channel.PUSH: settings.push_rate}[
        Channel(channel)]


def forecast(settings: Settings, messages: Mapping[Channel, int]) -> dict[Channel, float]:
    """Seconds each channel needs for MESSAGES at its configured rate (0 where unlimited);
    channels send in parallel, so the largest is the time to reach everyone."""
    return {Channel(channel): (number / rate if (rate := channel_rate(settings, channel)) > 0
                               else 0.0)
            for channel, number in messages.items()}


OPEN = {DeliveryStatus.QUEUED, DeliveryStatus.SENDING, DeliveryStatus.UNKNOWN}
WINDOW = timedelta(seconds=10)


@dataclass
class Progress:
    """One action's outbox as the console and `burgernet action status` show it."""

    action_id: int
    counts: dict[Channel, dict[DeliveryStatus, int]] = field(default_factory=dict)
    rate_per_second: dict[Channel, float] = field(default_factory=dict)
    remaining_seconds: dict[Channel, float] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(sum(by_status.values()) for by_status in self.counts.values())

    @property
    def forecast_seconds(self) -> float:
        """Channels send in parallel: the slowest one decides."""
        return max(self.remaining_seconds.values(), default=0.0)


def progress(session: Session, action_id: int, settings: Settings, now: datetime) -> Progress:
    """Counts, the rate over the last ten seconds, and the time left at the configured rates."""
    result = Progress(action_id)
    counts: dict[Channel, dict[DeliveryStatus, int]] = defaultdict(dict)
    for channel, status, number in session.execute(
            select(Delivery.channel, Delivery.status, func.count())
            .where(Delivery.action_id == action_id)
            .group_by(Delivery.channel, Delivery.status)):
        counts[channel][status] = number
    result.counts = dict(counts)
    recent = session.execute(
        select(Delivery.channel, func.count())
        .where(Delivery.action_id == action_id, Delivery.sent_at >= now - WINDOW)
        .group_by(Delivery.channel)).all()
    result.rate_per_second = {channel: number / WINDOW.total_seconds()
                              for channel, number in recent}
    result.remaining_seconds = forecast(settings, {
        channel: sum(n for s, n in by_status.items() if s in OPEN)
        for channel, by_status in counts.items()})
    return result
