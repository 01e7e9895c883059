"""Peak hours: daily windows during which normal jobs wait and DX jobs still run (PEAK_HOURS,
PEAK_TIMEZONE). Pure: the worker asks `covers(now)` and pauses its normal topics' partitions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
UTC = ZoneInfo("UTC")


class BadPeakHours(ValueError):
    pass


@dataclass(frozen=True)
class PeakHours:
    windows: tuple[tuple[time, time], ...] = ()  # [start, end) in local time; end before start: past midnight
    zone: ZoneInfo = UTC

    @classmethod
    def parse(cls, text: str, zone: str = "UTC") -> PeakHours:
        """`text` is comma-separated `HH:MM-HH:MM` windows (`22:00-02:00` runs past midnight); empty: none."""
        try:
            tz = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise BadPeakHours(f"PEAK_TIMEZONE: unknown time zone {zone!r}") from None
        windows = []
        for part in filter(str.strip, text.split(",")):
            match = WINDOW.match(part)
            try:
                if not match:
                    raise ValueError
                h1, m1, h2, m2 = map(int, match.groups())
                window = (time(h1, m1), time(h2, m2))
            except ValueError:
                raise BadPeakHours(f"PEAK_HOURS: {part.strip()!r} is not a window like 09:00-17:30") from None
            if window[0] == window[1]:
                raise BadPeakHours(f"PEAK_HOURS: {part.strip()!r} starts where it ends")
            windows.append(window)
        return cls(tuple(windows), tz)

    def covers(self, now: datetime) -> bool:
        local = now.astimezone(self.zone).time()
        return any(
            start <= local < end if start < end else (local >= start or local < end) for start, end in self.windows
        )

    def __str__(self) -> str:
        spans = ",".join(f"{a:%H:%M}-{b:%H:%M}" for a, b in self.windows)
        return f"{spans} {self.zone.key}" if spans else "none"
