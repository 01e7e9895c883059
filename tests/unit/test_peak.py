"""Peak hours: the daily windows in which normal jobs wait."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streams.peak import BadPeakHours, PeakHours


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, 1, hour, minute, tzinfo=UTC)


def test_a_window_covers_its_start_but_not_its_end() -> None:
    peak = PeakHours.parse("09:00-17:30")
    assert [peak.covers(at(h, m)) for h, m in ((8, 59), (9, 0), (17, 29), (17, 30))] == [False, True, True, False]


def test_a_window_may_run_past_midnight_and_there_may_be_several() -> None:
    peak = PeakHours.parse("22:00-02:00, 12:00-13:00")
    assert [peak.covers(at(h)) for h in (21, 22, 1, 2, 12, 13)] == [False, True, True, False, True, False]


def test_windows_are_in_the_configured_zone() -> None:
    paris = PeakHours.parse("09:00-10:00", "Europe/Paris")  # UTC+1 in December
    assert paris.covers(at(8, 30)) and not paris.covers(at(9, 30))
    assert str(paris) == "09:00-10:00 Europe/Paris"


def test_no_windows_cover_nothing() -> None:
    assert not PeakHours.parse("").covers(at(12)) and str(PeakHours()) == "none"


@pytest.mark.parametrize(
    ("text", "zone", "error"),
    [
        ("9-17", "UTC", "PEAK_HOURS: '9-17' is not a window"),
        ("25:00-26:00", "UTC", "PEAK_HOURS: '25:00-26:00' is not a window"),
        ("10:00-10:00", "UTC", "starts where it ends"),
        ("09:00-17:00", "Mars/Olympus", "PEAK_TIMEZONE: unknown time zone 'Mars/Olympus'"),
    ],
)
def test_a_bad_setting_is_refused_by_name(text: str, zone: str, error: str) -> None:
    with pytest.raises(BadPeakHours, match=error.replace("(", r"\(")):
        PeakHours.parse(text, zone)
