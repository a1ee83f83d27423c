"""DST behaviour of cron and every schedules, asserted as ISO strings.

Rules under test (cronie's, via cronsim): a fixed local time that does not exist
fires at the first instant after the gap; a fixed local time that occurs twice
fires once, at the first; a job with a wildcard leading its minute or hour field
follows real time and fires in both copies of a repeated hour.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from agentcron.schedules import CronSchedule, EverySchedule, FireTime, fires_between

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
SANTIAGO = ZoneInfo("America/Santiago")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
HAVANA = ZoneInfo("America/Havana")


def local_iso(fires: list[FireTime]) -> list[str]:
    return [f.local.isoformat() for f in fires]


def utc_gaps(fires: list[FireTime]) -> set[float]:
    return {(b.at - a.at).total_seconds() for a, b in itertools.pairwise(fires)}


def day(zone: ZoneInfo, year: int, month: int, dom: int) -> tuple[datetime, datetime]:
    """The window (local midnight, next local midnight] minus the first midnight."""
    start = datetime(year, month, dom, tzinfo=zone)
    return start, start + timedelta(days=1)


class TestBerlin:
    # Europe/Berlin 2026:
    #   spring forward 2026-03-29T01:00:00Z: 02:00 CET (+01:00) -> 03:00 CEST (+02:00);
    #     local 02:00-02:59 does not exist.
    #   fall back 2026-10-25T01:00:00Z: 03:00 CEST (+02:00) -> 02:00 CET (+01:00);
    #     local 02:00-02:59 occurs twice (fold=0 at +02:00, fold=1 at +01:00).

    def test_fixed_time_in_gap_fires_once_at_end_of_gap(self) -> None:
        fires = fires_between(CronSchedule("30 2 * * *", BERLIN), *day(BERLIN, 2026, 3, 29))
        assert local_iso(fires) == ["2026-03-29T03:00:00+02:00"]
        assert fires[0].at.isoformat() == "2026-03-29T01:00:00+00:00"
        assert fires[0].note == "02:30 does not exist on this day (DST starts); fires at 03:00"

    def test_days_around_the_gap_are_normal(self) -> None:
        start = datetime(2026, 3, 27, 12, tzinfo=UTC)
        end = datetime(2026, 3, 31, 12, tzinfo=UTC)
        fires = fires_between(CronSchedule("30 2 * * *", BERLIN), start, end)
        assert local_iso(fires) == [
            "2026-03-28T02:30:00+01:00",
            "2026-03-29T03:00:00+02:00",
            "2026-03-30T02:30:00+02:00",
            "2026-03-31T02:30:00+02:00",
        ]
        assert [f.note is None for f in fires] == [True, False, True, True]

    def test_fixed_time_in_repeated_hour_fires_once_at_first(self) -> None:
        fires = fires_between(CronSchedule("30 2 * * *", BERLIN), *day(BERLIN, 2026, 10, 25))
        assert local_iso(fires) == ["2026-10-25T02:30:00+02:00"]
        assert fires[0].local.fold == 0
        assert fires[0].at.isoformat() == "2026-10-25T00:30:00+00:00"
        assert fires[0].note == "02:30 occurs twice (DST ends); fires once, at the first"

    def test_asking_from_the_second_copy_does_not_fire_it_again(self) -> None:
        # 02:15 in the second copy (+01:00) is after the first 02:30 (+02:00).
        after = datetime(2026, 10, 25, 2, 15, tzinfo=BERLIN, fold=1)
        assert after.isoformat() == "2026-10-25T02:15:00+01:00"
        fire = CronSchedule("30 2 * * *", BERLIN).next_after(after)
        assert fire is not None
        assert fire.local.isoformat() == "2026-10-26T02:30:00+01:00"
        assert fire.note is None

    def test_wildcard_fires_in_both_copies_of_the_repeated_hour(self) -> None:
        start = datetime(2026, 10, 25, 1, 45, tzinfo=BERLIN)
        end = datetime(2026, 10, 25, 3, 0, tzinfo=BERLIN)
        fires = fires_between(CronSchedule("*/30 * * * *", BERLIN), start, end)
        assert local_iso(fires) == [
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:30:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T02:30:00+01:00",
            "2026-10-25T03:00:00+01:00",
        ]
        assert [f.local.fold for f in fires] == [0, 0, 1, 1, 0]
        assert [f.note for f in fires] == [
            "repeated hour (DST ends): first 02:00",
            "repeated hour (DST ends): first 02:30",
            "repeated hour (DST ends): second 02:00",
            "repeated hour (DST ends): second 02:30",
            None,
        ]
        assert utc_gaps(fires) == {1800.0}

    def test_wildcard_keeps_real_time_cadence_through_the_gap(self) -> None:
        start = datetime(2026, 3, 29, 1, 0, tzinfo=BERLIN)
        end = datetime(2026, 3, 29, 3, 30, tzinfo=BERLIN)
        fires = fires_between(CronSchedule("*/30 * * * *", BERLIN), start, end)
        assert local_iso(fires) == [
            "2026-03-29T01:30:00+01:00",
            "2026-03-29T03:00:00+02:00",
            "2026-03-29T03:30:00+02:00",
        ]
        assert [f.note for f in fires] == [None, None, None]
        assert utc_gaps(fires) == {1800.0}

    def test_hourly_has_23_and_25_fires_on_the_short_and_long_day(self) -> None:
        hourly = CronSchedule("@hourly", BERLIN)
        spring = fires_between(hourly, *day(BERLIN, 2026, 3, 29))
        autumn = fires_between(hourly, *day(BERLIN, 2026, 10, 25))
        assert len(spring) == 23
        assert len(autumn) == 25
        assert utc_gaps(spring) == utc_gaps(autumn) == {3600.0}
        assert "2026-03-29T02:00:00+01:00" not in local_iso(spring)
        assert local_iso(autumn)[1:4] == [
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T03:00:00+01:00",
        ]

    def test_hour_step_does_not_fire_at_a_missing_hour(self) -> None:
        # Real-time rule: 02:00 does not exist, so the 2-hourly job next fires at 04:00.
        start = datetime(2026, 3, 28, 23, 0, tzinfo=BERLIN)
        end = datetime(2026, 3, 29, 5, 0, tzinfo=BERLIN)
        fires = fires_between(CronSchedule("0 */2 * * *", BERLIN), start, end)
        assert local_iso(fires) == ["2026-03-29T00:00:00+01:00", "2026-03-29T04:00:00+02:00"]
        assert [f.note for f in fires] == [None, None]

    def test_minute_wildcard_with_fixed_hour_follows_real_time(self) -> None:
        # cronie treats a leading '*' in the minute field as a wildcard job too.
        every_minute_at_two = CronSchedule("* 2 * * *", BERLIN)
        assert fires_between(every_minute_at_two, *day(BERLIN, 2026, 3, 29)) == []
        autumn = fires_between(every_minute_at_two, *day(BERLIN, 2026, 10, 25))
        assert len(autumn) == 120
        assert autumn[60].local.isoformat() == "2026-10-25T02:00:00+01:00"

    def test_every_hour_is_3600_seconds_of_real_time_across_both_changes(self) -> None:
        every = EverySchedule(timedelta(hours=1), BERLIN)
        for start in (datetime(2026, 3, 28, tzinfo=UTC), datetime(2026, 10, 24, tzinfo=UTC)):
            fires = fires_between(every, start, start + timedelta(days=3))
            assert len(fires) == 72
            assert utc_gaps(fires) == {3600.0}
            assert all(f.at.minute == 0 and f.at.second == 0 for f in fires)
        assert len(fires_between(every, *day(BERLIN, 2026, 3, 29))) == 23
        assert len(fires_between(every, *day(BERLIN, 2026, 10, 25))) == 25

    def test_every_fire_in_the_repeated_hour_says_which_copy(self) -> None:
        every = EverySchedule(timedelta(hours=1), BERLIN)
        start = datetime(2026, 10, 25, 1, 30, tzinfo=BERLIN)
        end = datetime(2026, 10, 25, 3, 30, tzinfo=BERLIN)
        fires = fires_between(every, start, end)
        assert local_iso(fires) == [
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T03:00:00+01:00",
        ]
        assert [f.note for f in fires] == [
            "repeated hour (DST ends): first 02:00",
            "repeated hour (DST ends): second 02:00",
            None,
        ]


class TestNewYork:
    # America/New_York 2026:
    #   spring forward 2026-03-08T07:00:00Z: 02:00 EST (-05:00) -> 03:00 EDT (-04:00);
    #     local 02:00-02:59 does not exist.
    #   fall back 2026-11-01T06:00:00Z: 02:00 EDT (-04:00) -> 01:00 EST (-05:00);
    #     local 01:00-01:59 occurs twice (fold=0 at -04:00, fold=1 at -05:00).

    def test_fixed_time_in_gap_fires_once_at_end_of_gap(self) -> None:
        fires = fires_between(CronSchedule("30 2 * * *", NEW_YORK), *day(NEW_YORK, 2026, 3, 8))
        assert local_iso(fires) == ["2026-03-08T03:00:00-04:00"]
        assert fires[0].at.isoformat() == "2026-03-08T07:00:00+00:00"
        assert fires[0].note == "02:30 does not exist on this day (DST starts); fires at 03:00"

    def test_fixed_time_in_repeated_hour_fires_once_at_first(self) -> None:
        fires = fires_between(CronSchedule("30 1 * * *", NEW_YORK), *day(NEW_YORK, 2026, 11, 1))
        assert local_iso(fires) == ["2026-11-01T01:30:00-04:00"]
        assert fires[0].at.isoformat() == "2026-11-01T05:30:00+00:00"
        assert fires[0].note == "01:30 occurs twice (DST ends); fires once, at the first"

    def test_half_past_two_is_plain_on_the_fall_back_day(self) -> None:
        fires = fires_between(CronSchedule("30 2 * * *", NEW_YORK), *day(NEW_YORK, 2026, 11, 1))
        assert local_iso(fires) == ["2026-11-01T02:30:00-05:00"]
        assert fires[0].note is None

    def test_asking_from_the_second_copy_does_not_fire_it_again(self) -> None:
        after = datetime(2026, 11, 1, 1, 10, tzinfo=NEW_YORK, fold=1)
        assert after.isoformat() == "2026-11-01T01:10:00-05:00"
        fire = CronSchedule("30 1 * * *", NEW_YORK).next_after(after)
        assert fire is not None
        assert fire.local.isoformat() == "2026-11-02T01:30:00-05:00"

    def test_wildcard_fires_in_both_copies_of_the_repeated_hour(self) -> None:
        start = datetime(2026, 11, 1, 0, 45, tzinfo=NEW_YORK)
        end = datetime(2026, 11, 1, 2, 0, tzinfo=NEW_YORK)
        fires = fires_between(CronSchedule("*/30 * * * *", NEW_YORK), start, end)
        assert local_iso(fires) == [
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T01:30:00-04:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T01:30:00-05:00",
            "2026-11-01T02:00:00-05:00",
        ]
        assert [f.local.fold for f in fires] == [0, 0, 1, 1, 0]
        assert fires[3].note == "repeated hour (DST ends): second 01:30"
        assert utc_gaps(fires) == {1800.0}

    def test_wildcard_keeps_real_time_cadence_through_the_gap(self) -> None:
        start = datetime(2026, 3, 8, 1, 0, tzinfo=NEW_YORK)
        end = datetime(2026, 3, 8, 3, 30, tzinfo=NEW_YORK)
        fires = fires_between(CronSchedule("*/30 * * * *", NEW_YORK), start, end)
        assert local_iso(fires) == [
            "2026-03-08T01:30:00-05:00",
            "2026-03-08T03:00:00-04:00",
            "2026-03-08T03:30:00-04:00",
        ]
        assert utc_gaps(fires) == {1800.0}

    def test_every_hour_is_3600_seconds_of_real_time_across_both_changes(self) -> None:
        every = EverySchedule(timedelta(hours=1), NEW_YORK)
        for start in (datetime(2026, 3, 7, tzinfo=UTC), datetime(2026, 10, 31, tzinfo=UTC)):
            fires = fires_between(every, start, start + timedelta(days=3))
            assert len(fires) == 72
            assert utc_gaps(fires) == {3600.0}
        assert len(fires_between(every, *day(NEW_YORK, 2026, 3, 8))) == 23
        assert len(fires_between(every, *day(NEW_YORK, 2026, 11, 1))) == 25


class TestMidnightAndHalfHourChanges:
    # America/Santiago 2026: spring forward 2026-09-06T04:00:00Z:
    #   24:00 (-04:00) -> 01:00 (-03:00); local 00:00-00:59 on 2026-09-06 does not exist.
    # America/Havana 2026: spring forward 2026-03-08T05:00:00Z (a Sunday):
    #   24:00 (-05:00) -> 01:00 (-04:00); local 00:00-00:59 on 2026-03-08 does not exist.
    # Australia/Lord_Howe 2026: spring forward 2026-10-03T15:30:00Z:
    #   02:00 (+10:30) -> 02:30 (+11:00), a 30-minute gap;
    #   fall back 2026-04-04T15:00:00Z: 02:00 (+11:00) -> 01:30 (+10:30).

    def test_daily_at_midnight_fires_at_one_when_midnight_is_skipped(self) -> None:
        start = datetime(2026, 9, 4, 12, tzinfo=UTC)
        end = datetime(2026, 9, 7, 12, tzinfo=UTC)
        fires = fires_between(CronSchedule("@daily", SANTIAGO), start, end)
        assert local_iso(fires) == [
            "2026-09-05T00:00:00-04:00",
            "2026-09-06T01:00:00-03:00",
            "2026-09-07T00:00:00-03:00",
        ]
        assert fires[1].note == "00:00 does not exist on this day (DST starts); fires at 01:00"

    def test_half_hour_gap(self) -> None:
        start = datetime(2026, 10, 3, 12, tzinfo=UTC)
        end = datetime(2026, 10, 4, 12, tzinfo=UTC)
        fires = fires_between(CronSchedule("15 2 * * *", LORD_HOWE), start, end)
        assert local_iso(fires) == ["2026-10-04T02:30:00+11:00"]
        assert fires[0].at.isoformat() == "2026-10-03T15:30:00+00:00"
        assert fires[0].note == "02:15 does not exist on this day (DST starts); fires at 02:30"

    def test_half_hour_repeat_with_quarter_hour_job(self) -> None:
        start = datetime(2026, 4, 4, 14, 20, tzinfo=UTC)
        end = datetime(2026, 4, 4, 15, 35, tzinfo=UTC)
        fires = fires_between(CronSchedule("*/15 * * * *", LORD_HOWE), start, end)
        assert local_iso(fires) == [
            "2026-04-05T01:30:00+11:00",
            "2026-04-05T01:45:00+11:00",
            "2026-04-05T01:30:00+10:30",
            "2026-04-05T01:45:00+10:30",
            "2026-04-05T02:00:00+10:30",
        ]
        assert utc_gaps(fires) == {900.0}

    def test_real_time_job_fires_right_after_a_skipped_midnight(self) -> None:
        # cronsim 2.8 alone answers the next Sunday here: it lands on the missing
        # midnight, moves an hour of real time from it and so steps over 01:00-01:59.
        after = datetime(2026, 3, 7, 23, 0, tzinfo=HAVANA)
        fires = fires_between(
            CronSchedule("*/20 1 * * SUN", HAVANA), after, after + timedelta(hours=3)
        )
        assert local_iso(fires) == [
            "2026-03-08T01:00:00-04:00",
            "2026-03-08T01:20:00-04:00",
            "2026-03-08T01:40:00-04:00",
        ]
        assert fires[0].at.isoformat() == "2026-03-08T05:00:00+00:00"
        assert [f.note for f in fires] == [None, None, None]

    def test_real_time_job_after_a_half_hour_gap(self) -> None:
        # cronsim 2.8 alone answers 03:30 here: it rewinds 02:45 to the missing 02:00.
        after = datetime(2026, 10, 4, 2, 45, tzinfo=LORD_HOWE)
        fire = CronSchedule("*/10 3 * * *", LORD_HOWE).next_after(after)
        assert fire is not None
        assert fire.local.isoformat() == "2026-10-04T03:00:00+11:00"
