"""Interval and one-shot schedules, the fires_between window, zones and build_schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agentcron.durations import parse_duration
from agentcron.model.task import TaskSpec
from agentcron.schedules import (
    AtSchedule,
    CronSchedule,
    EverySchedule,
    Schedule,
    build_schedule,
    fires_between,
    resolve_zone,
    system_zone,
)
from agentcron.schedules.every import compact_duration
from agentcron.schedules.zones import next_offset_change

BERLIN = ZoneInfo("Europe/Berlin")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, sec, tzinfo=UTC)


class TestEvery:
    def test_default_grid_is_anchored_at_the_unix_epoch(self) -> None:
        hourly = EverySchedule(timedelta(hours=1), BERLIN)
        fire = hourly.next_after(utc(2026, 5, 1, 12, 34, 56))
        assert fire is not None
        assert fire.at.isoformat() == "2026-05-01T13:00:00+00:00"
        assert fire.local.isoformat() == "2026-05-01T15:00:00+02:00"
        daily = EverySchedule(timedelta(days=1), BERLIN).next_after(utc(2026, 5, 1, 12))
        assert daily is not None
        assert daily.at.isoformat() == "2026-05-02T00:00:00+00:00"

    def test_naive_anchor_is_local_time_and_the_grid_is_absolute(self) -> None:
        daily = EverySchedule(timedelta(days=1), BERLIN, anchor=datetime(2026, 1, 5, 9, 0))
        assert daily.origin.isoformat() == "2026-01-05T08:00:00+00:00"
        winter = daily.next_after(utc(2026, 1, 10, 12))
        summer = daily.next_after(utc(2026, 7, 1))
        assert winter is not None and summer is not None
        assert winter.local.isoformat() == "2026-01-11T09:00:00+01:00"
        # Absolute time: after the change to summer time the same instant reads 10:00.
        assert summer.local.isoformat() == "2026-07-01T10:00:00+02:00"
        assert summer.at.isoformat() == "2026-07-01T08:00:00+00:00"

    def test_aware_anchor_sets_the_phase(self) -> None:
        every = EverySchedule(timedelta(minutes=90), BERLIN, anchor=utc(2026, 1, 1, 0, 10))
        fires = fires_between(every, utc(2026, 1, 1, 0, 10), utc(2026, 1, 1, 4, 40))
        assert [f.at.strftime("%H:%M") for f in fires] == ["01:40", "03:10", "04:40"]

    def test_nothing_fires_before_the_anchor(self) -> None:
        anchor = utc(2026, 6, 1, 9)
        every = EverySchedule(timedelta(hours=1), BERLIN, anchor=anchor)
        first = every.next_after(utc(2026, 5, 1))
        at_anchor = every.next_after(anchor)
        assert first is not None and at_anchor is not None
        assert first.at == anchor
        assert at_anchor.at == anchor + timedelta(hours=1)

    def test_no_drift_whenever_you_ask(self) -> None:
        anchor = utc(2026, 1, 1, 0, 0, 7)
        interval = timedelta(minutes=7, seconds=13)
        every = EverySchedule(interval, BERLIN, anchor=anchor)
        for i in range(500):
            after = anchor + timedelta(seconds=12_345.678 * i)
            fire = every.next_after(after)
            assert fire is not None
            assert (fire.at - anchor) % interval == timedelta(0)
            assert fire.at - interval <= after < fire.at

    def test_fractional_interval_is_exact_far_from_the_anchor(self) -> None:
        every = EverySchedule(timedelta(seconds=1.5), BERLIN)
        fire = every.next_after(utc(2030, 1, 1) + timedelta(milliseconds=200))
        assert fire is not None
        assert fire.at.isoformat() == "2030-01-01T00:00:01.500000+00:00"

    def test_interval_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="positive interval"):
            EverySchedule(timedelta(0), BERLIN)

    def test_period_and_describe(self) -> None:
        every = EverySchedule(timedelta(minutes=90), BERLIN)
        assert every.period() == timedelta(minutes=90)
        assert every.describe() == "every 1h30m (Europe/Berlin)"
        anchored = EverySchedule(timedelta(days=1), BERLIN, anchor=datetime(2026, 1, 5, 9))
        assert anchored.describe() == "every 1d from 2026-01-05T09:00:00+01:00 (Europe/Berlin)"

    @pytest.mark.parametrize(
        ("delta", "text"),
        [
            (timedelta(days=1, hours=2, minutes=3, seconds=4), "1d2h3m4s"),
            (timedelta(seconds=1.5), "1500ms"),
            (timedelta(minutes=5), "5m"),
            (timedelta(seconds=45), "45s"),
        ],
    )
    def test_compact_duration_reads_back(self, delta: timedelta, text: str) -> None:
        assert compact_duration(delta) == text
        assert parse_duration(text) == delta

    @pytest.mark.parametrize(
        ("text", "words"),
        [("nan", "not a duration: 'nan'"), ("inf", "out of range"), ("-1", "negative")],
    )
    def test_what_is_not_a_duration_is_said_in_words(self, text: str, words: str) -> None:
        """Probe: AGENTCRON_BEAT=nan said "cannot convert float NaN to integer"."""
        with pytest.raises(ValueError, match=words):
            parse_duration(text)


class TestFiresBetween:
    def test_start_is_exclusive_and_end_inclusive(self) -> None:
        hourly = EverySchedule(timedelta(hours=1), BERLIN)
        fires = fires_between(hourly, utc(2026, 5, 1, 10), utc(2026, 5, 1, 13))
        assert [f.at.isoformat() for f in fires] == [
            "2026-05-01T11:00:00+00:00",
            "2026-05-01T12:00:00+00:00",
            "2026-05-01T13:00:00+00:00",
        ]

    def test_adjacent_windows_neither_repeat_nor_lose_a_fire(self) -> None:
        cron = CronSchedule("*/7 * * * *", BERLIN)
        t0, t1, t2 = utc(2026, 5, 1, 10), utc(2026, 5, 1, 10, 28), utc(2026, 5, 1, 11)
        whole = fires_between(cron, t0, t2)
        assert fires_between(cron, t0, t1) + fires_between(cron, t1, t2) == whole
        assert [f.at.minute for f in whole] == [7, 14, 21, 28, 35, 42, 49, 56, 0]

    def test_empty_window_and_limit(self) -> None:
        hourly = EverySchedule(timedelta(hours=1), BERLIN)
        assert fires_between(hourly, utc(2026, 5, 1, 10), utc(2026, 5, 1, 10)) == []
        assert fires_between(hourly, utc(2026, 5, 1, 10, 1), utc(2026, 5, 1, 10, 59)) == []
        assert len(fires_between(hourly, utc(2026, 5, 1), utc(2026, 6, 1), limit=5)) == 5


class TestAt:
    def test_naive_time_is_local_and_fires_once(self) -> None:
        once = AtSchedule(datetime(2026, 5, 1, 9, 0), BERLIN)
        fire = once.next_after(utc(2026, 4, 1))
        assert fire is not None
        assert fire.at.isoformat() == "2026-05-01T07:00:00+00:00"
        assert fire.local.isoformat() == "2026-05-01T09:00:00+02:00"
        assert fire.note is None
        assert once.next_after(fire.at) is None
        assert once.next_after(fire.at - timedelta(microseconds=1)) == fire
        assert once.next_after(utc(2026, 6, 1)) is None
        assert fires_between(once, utc(2026, 1, 1), utc(2027, 1, 1)) == [fire]

    def test_aware_time_keeps_its_instant(self) -> None:
        new_york_summer = timezone(timedelta(hours=-4))
        once = AtSchedule(datetime(2026, 5, 1, 9, 0, tzinfo=new_york_summer), BERLIN)
        assert once.fire.at.isoformat() == "2026-05-01T13:00:00+00:00"
        assert once.fire.local.isoformat() == "2026-05-01T15:00:00+02:00"

    # Europe/Berlin 2026: spring forward 2026-03-29T01:00:00Z (02:00 -> 03:00 local),
    # fall back 2026-10-25T01:00:00Z (03:00 -> 02:00 local).
    def test_missing_local_time_fires_at_end_of_gap(self) -> None:
        once = AtSchedule(datetime(2026, 3, 29, 2, 30, 15), BERLIN)
        assert once.fire.local.isoformat() == "2026-03-29T03:00:00+02:00"
        assert once.fire.note == "02:30:15 does not exist on this day (DST starts); fires at 03:00"

    def test_doubled_local_time_fires_at_the_first(self) -> None:
        once = AtSchedule(datetime(2026, 10, 25, 2, 30), BERLIN)
        assert once.fire.local.isoformat() == "2026-10-25T02:30:00+02:00"
        assert once.fire.note == "02:30 occurs twice (DST ends); fires once, at the first"

    def test_explicit_second_copy_is_respected_and_named(self) -> None:
        once = AtSchedule(datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN, fold=1), BERLIN)
        assert once.fire.at.isoformat() == "2026-10-25T01:30:00+00:00"
        assert once.fire.local.isoformat() == "2026-10-25T02:30:00+01:00"
        assert once.fire.note == "repeated hour (DST ends): second 02:30"

    def test_period_and_describe(self) -> None:
        once = AtSchedule(datetime(2026, 5, 1, 9, 0), BERLIN)
        assert once.period() == timedelta(0)
        assert once.describe() == "at 2026-05-01T09:00:00+02:00 (Europe/Berlin)"


class TestZones:
    def test_names_resolve_and_unknown_names_are_reported(self) -> None:
        assert resolve_zone("Europe/Berlin") is BERLIN
        for bad in ("Mars/Olympus", "Europe", "", "../etc/passwd"):
            with pytest.raises(ValueError, match=r"unknown time zone .* IANA name"):
                resolve_zone(bad)

    def test_next_offset_change_finds_the_exact_second(self) -> None:
        # Europe/Berlin 2026: clocks change at 2026-03-29T01:00:00Z and 2026-10-25T01:00:00Z.
        change = next_offset_change(BERLIN, utc(2026, 1, 1), utc(2026, 12, 31))
        assert change is not None
        assert change.isoformat() == "2026-03-29T01:00:00+00:00"
        later = next_offset_change(BERLIN, change, utc(2026, 12, 31))
        assert later is not None
        assert later.isoformat() == "2026-10-25T01:00:00+00:00"
        assert next_offset_change(BERLIN, utc(2026, 4, 1), utc(2026, 10, 25)) is None

    def test_none_means_the_system_zone(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TZ", "Asia/Tokyo")
        assert resolve_zone(None).key == "Asia/Tokyo"

    def test_tz_variable_forms(self, tmp_path: Path) -> None:
        nowhere = tmp_path / "localtime"
        assert system_zone({"TZ": ":Europe/Berlin"}, nowhere).key == "Europe/Berlin"
        tz_path = "/usr/share/zoneinfo/America/New_York"
        assert system_zone({"TZ": tz_path}, nowhere).key == "America/New_York"

    def test_falls_back_to_localtime_link_then_utc(self, tmp_path: Path) -> None:
        target = tmp_path / "zoneinfo" / "Asia" / "Kolkata"
        target.parent.mkdir(parents=True)
        target.write_bytes(b"")
        link = tmp_path / "localtime"
        link.symlink_to(target)
        # A POSIX rule string cannot be named, so the link decides.
        assert system_zone({"TZ": "XYZ-3ABC"}, link).key == "Asia/Kolkata"
        assert system_zone({}, link).key == "Asia/Kolkata"
        assert system_zone({}, tmp_path / "missing").key == "UTC"


class TestBuild:
    def spec(self, **schedule: object) -> TaskSpec:
        return TaskSpec.model_validate({"name": "job", "command": ["true"], **schedule})

    def test_every_kind(self) -> None:
        cron = build_schedule(self.spec(cron="@daily", timezone="Asia/Tokyo"), "Europe/Berlin")
        every = build_schedule(self.spec(every="90m", anchor="2026-01-05T09:00"), "Europe/Berlin")
        once = build_schedule(self.spec(at="2026-05-01 09:00"), "Europe/Berlin")
        assert isinstance(cron, CronSchedule)
        assert isinstance(every, EverySchedule)
        assert isinstance(once, AtSchedule)
        assert all(isinstance(s, Schedule) for s in (cron, every, once))
        assert cron.describe() == "cron 0 0 * * * (Asia/Tokyo)"
        assert every.describe() == "every 1h30m from 2026-01-05T09:00:00+01:00 (Europe/Berlin)"
        assert once.describe() == "at 2026-05-01T09:00:00+02:00 (Europe/Berlin)"

    def test_zone_falls_back_to_default_then_system(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TZ", "America/New_York")
        assert build_schedule(self.spec(cron="0 2 * * *"), "Europe/Berlin").zone is BERLIN
        assert build_schedule(self.spec(cron="0 2 * * *")).zone.key == "America/New_York"

    def test_unknown_default_zone_is_reported(self) -> None:
        with pytest.raises(ValueError, match="unknown time zone 'Atlantis/Capital'"):
            build_schedule(self.spec(cron="0 2 * * *"), "Atlantis/Capital")
