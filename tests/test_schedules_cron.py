"""Cron expressions: validation, aliases, field semantics, period and description."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from agentcron.model.task import TaskSpec
from agentcron.schedules import ALIASES, CronSchedule, fires_between, validate_cron

ZULU = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, sec, tzinfo=UTC)


def next_utc(expr: str, after: datetime, zone: ZoneInfo = ZULU) -> str:
    fire = CronSchedule(expr, zone).next_after(after)
    assert fire is not None
    return fire.at.isoformat()


class TestValidation:
    @pytest.mark.parametrize(
        ("alias", "expanded"),
        [
            ("@hourly", "0 * * * *"),
            ("@daily", "0 0 * * *"),
            ("@midnight", "0 0 * * *"),
            ("@weekly", "0 0 * * 0"),
            ("@monthly", "0 0 1 * *"),
            ("@yearly", "0 0 1 1 *"),
            ("@annually", "0 0 1 1 *"),
        ],
    )
    def test_alias_expands_to_five_fields(self, alias: str, expanded: str) -> None:
        assert ALIASES[alias] == expanded
        assert validate_cron(alias) == expanded
        assert validate_cron(f"  {alias.upper()} ") == expanded

    def test_whitespace_is_collapsed(self) -> None:
        assert validate_cron("  0\t2  * *   1-5 ") == "0 2 * * 1-5"

    def test_names_lists_ranges_and_steps_are_accepted(self) -> None:
        for expr in ("0 9 * JAN-MAR MON-FRI", "5,35 */2 1-7 * *", "0 0 L * *", "0 12 * * 7"):
            assert validate_cron(expr) == expr

    @pytest.mark.parametrize(
        ("expr", "problem"),
        [
            ("61 * * * *", "minute field '61' is not valid (use 0-59"),
            ("0 24 * * *", "hour field '24' is not valid (use 0-23"),
            ("0 0 0 * *", "day-of-month field '0' is not valid"),
            ("0 0 * 13 *", "month field '13' is not valid (use 1-12"),
            ("0 0 * * 8", "day-of-week field '8' is not valid (use 0-7"),
            ("*/0 * * * *", "minute field '*/0' is not valid"),
            ("5-1 * * * *", "minute field '5-1' is not valid"),
            ("* * * *", "4 fields given, expected 5"),
            ("* * * * * *", "6 fields given, expected 5"),
            ("@reboot", "@reboot is not supported"),
            ("@fortnightly", "unknown alias; use one of @yearly"),
            ("banana", "1 field given, expected 5"),
            ("", "it is empty"),
            ("   ", "it is empty"),
            ("0 0 30 2 *", "that day of the month never occurs"),
        ],
    )
    def test_rejects_with_a_message_naming_expression_and_problem(
        self, expr: str, problem: str
    ) -> None:
        with pytest.raises(ValueError) as info:
            validate_cron(expr)
        message = str(info.value)
        assert message.startswith(f"invalid cron expression {expr!r}: ")
        assert problem in message

    def test_seconds_field_is_called_out(self) -> None:
        with pytest.raises(ValueError, match="seconds and years are not supported"):
            validate_cron("0 0 2 * * *")

    def test_task_spec_normalizes_and_rejects_through_validate_cron(self) -> None:
        spec = TaskSpec(name="story", cron="@daily", command=["true"])
        assert spec.cron == "0 0 * * *"
        with pytest.raises(ValidationError, match=r"invalid cron expression '61 \* \* \* \*'"):
            TaskSpec(name="story", cron="61 * * * *", command=["true"])

    def test_schedule_refuses_an_invalid_expression(self) -> None:
        with pytest.raises(ValueError, match="invalid cron expression"):
            CronSchedule("@reboot", ZULU)


class TestNextAfter:
    @pytest.mark.parametrize(
        ("alias", "expected"),
        [
            ("@hourly", "2026-05-06T13:00:00+00:00"),
            ("@daily", "2026-05-07T00:00:00+00:00"),
            ("@midnight", "2026-05-07T00:00:00+00:00"),
            ("@weekly", "2026-05-10T00:00:00+00:00"),  # the next Sunday
            ("@monthly", "2026-06-01T00:00:00+00:00"),
            ("@yearly", "2027-01-01T00:00:00+00:00"),
            ("@annually", "2027-01-01T00:00:00+00:00"),
        ],
    )
    def test_aliases_fire_when_their_names_say(self, alias: str, expected: str) -> None:
        # 2026-05-06 is a Wednesday.
        assert next_utc(alias, utc(2026, 5, 6, 12, 34, 56)) == expected

    def test_strictly_after(self) -> None:
        assert next_utc("*/5 * * * *", utc(2026, 5, 1, 12, 5)) == "2026-05-01T12:10:00+00:00"
        just_before = utc(2026, 5, 1, 12, 4, 59) + timedelta(microseconds=999_999)
        assert next_utc("*/5 * * * *", just_before) == "2026-05-01T12:05:00+00:00"
        with_micros = utc(2026, 5, 1, 12, 5) + timedelta(microseconds=1)
        assert next_utc("*/5 * * * *", with_micros) == "2026-05-01T12:10:00+00:00"

    def test_after_may_be_in_any_zone(self) -> None:
        india = timezone(timedelta(hours=5, minutes=30))
        after = datetime(2026, 5, 1, 17, 35, tzinfo=india)  # 12:05Z
        assert next_utc("*/5 * * * *", after) == "2026-05-01T12:10:00+00:00"
        assert next_utc("0 9 * * *", after, BERLIN) == "2026-05-02T07:00:00+00:00"

    def test_naive_after_is_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            CronSchedule("* * * * *", ZULU).next_after(datetime(2026, 5, 1))

    def test_fire_carries_utc_instant_and_local_time(self) -> None:
        fire = CronSchedule("0 9 * * *", BERLIN).next_after(utc(2026, 7, 1))
        assert fire is not None
        assert fire.at.isoformat() == "2026-07-01T07:00:00+00:00"
        assert fire.at.tzinfo is UTC
        assert fire.local.isoformat() == "2026-07-01T09:00:00+02:00"
        assert fire.local.tzinfo is BERLIN
        assert fire.note is None

    def test_day_of_month_or_day_of_week_when_both_restricted(self) -> None:
        # February 2026 begins on a Sunday: Fridays are the 6th, 13th, 20th, 27th.
        fires = fires_between(CronSchedule("0 0 10 * 5", ZULU), utc(2026, 2, 1), utc(2026, 3, 10))
        assert [f.at.date().isoformat() for f in fires] == [
            "2026-02-06",
            "2026-02-10",
            "2026-02-13",
            "2026-02-20",
            "2026-02-27",
            "2026-03-06",
            "2026-03-10",
        ]

    def test_day_fields_combine_with_and_when_one_is_a_star(self) -> None:
        fridays = fires_between(CronSchedule("0 0 * * FRI", ZULU), utc(2026, 2, 1), utc(2026, 3, 1))
        assert [f.at.day for f in fridays] == [6, 13, 20, 27]
        tenth = fires_between(CronSchedule("0 0 10 * *", ZULU), utc(2026, 2, 1), utc(2026, 4, 1))
        assert [f.at.date().isoformat() for f in tenth] == ["2026-02-10", "2026-03-10"]

    def test_sunday_is_0_and_7(self) -> None:
        assert next_utc("0 0 * * 7", utc(2026, 5, 6)) == next_utc("0 0 * * 0", utc(2026, 5, 6))

    def test_leap_day_only_schedule(self) -> None:
        assert next_utc("0 0 29 2 *", utc(2026, 1, 1)) == "2028-02-29T00:00:00+00:00"


class TestPeriodAndDescription:
    @pytest.mark.parametrize(
        ("expr", "period"),
        [
            ("* * * * *", timedelta(minutes=1)),
            ("*/15 * * * *", timedelta(minutes=15)),
            ("0 */6 * * *", timedelta(hours=6)),
            ("0 9,17 * * *", timedelta(hours=8)),
            ("0 2 * * *", timedelta(days=1)),
            ("0 9 * * 1-5", timedelta(days=1)),
            ("@monthly", timedelta(days=1)),  # capped
            ("@yearly", timedelta(days=1)),  # capped
        ],
    )
    def test_period_is_the_smallest_gap_capped_at_a_day(self, expr: str, period: timedelta) -> None:
        assert CronSchedule(expr, BERLIN).period() == period

    def test_describe(self) -> None:
        assert CronSchedule("0 2 * * *", BERLIN).describe() == "cron 0 2 * * * (Europe/Berlin)"
        assert CronSchedule("@hourly", ZULU).describe() == "cron 0 * * * * (UTC)"
