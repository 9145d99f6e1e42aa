"""Which table answers which part of a report's time range.

The aggregates are hour- and day-grained and stored in UTC. A range ``[from, to)`` is split so
that every part is exact and as cheap as possible:

    raw answers   [from, first whole hour)        minutes at the edges
    hourly        [first hour, first UTC midnight)
    daily         [first midnight, last midnight)  only for tz=UTC and day/week/month buckets
    hourly        [last midnight, last whole hour)
    raw answers   [last whole hour, to)

Day buckets in another time zone start at a local midnight, which is an hour boundary in UTC only
for zones with whole-hour offsets; those come from the hourly table. Zones with other offsets
(Asia/Kolkata, ...) are answered from the raw answers: exact, just slower.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Source = Literal["raw", "hourly", "daily"]
Interval = Literal["hour", "day", "week", "month"]

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
UTC_NAMES = {"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Universal", "Etc/Universal", "Zulu", "Etc/Zulu"}


@dataclass(frozen=True)
class Segment:
    source: Source
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive


def _floor(t: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((t - epoch) // step) * step


def _ceil(t: datetime, step: timedelta) -> datetime:
    floored = _floor(t, step)
    return floored if floored == t else floored + step


def whole_hour_offsets(tz: ZoneInfo, start: datetime, end: datetime) -> bool:
    """True when every UTC offset ``tz`` uses in [start, end) is a whole number of hours."""
    probe = start
    while True:
        offset = probe.astimezone(tz).utcoffset() or timedelta(0)
        if offset % HOUR:
            return False
        if probe >= end:
            return True
        # Offsets change at most a few times a year; probing every 15 days finds every regime
        # that lasts longer than that, which is every real one.
        probe = min(probe + timedelta(days=15), end)


def plan_segments(
    start: datetime, end: datetime, interval: Interval, tz: ZoneInfo, raw_only: bool = False
) -> list[Segment]:
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        return []
    if raw_only or not whole_hour_offsets(tz, start, end):
        return [Segment("raw", start, end)]
    out: list[Segment] = []
    h0, h1 = _ceil(start, HOUR), _floor(end, HOUR)
    if h0 >= h1:
        return [Segment("raw", start, end)]
    if start < h0:
        out.append(Segment("raw", start, h0))
    daily_ok = interval != "hour" and tz.key in UTC_NAMES
    d0, d1 = _ceil(h0, DAY), _floor(h1, DAY)
    if daily_ok and d0 < d1:
        if h0 < d0:
            out.append(Segment("hourly", h0, d0))
        out.append(Segment("daily", d0, d1))
        if d1 < h1:
            out.append(Segment("hourly", d1, h1))
    else:
        out.append(Segment("hourly", h0, h1))
    if h1 < end:
        out.append(Segment("raw", h1, end))
    return out
