"""An import into a setup with no ``notify:`` channel says that failures reach no one.

cron mailed every output to MAILTO; agentcron tells problems through ``notify:``
channels. Importing into a config without one said nothing, while ``agentcron
validate`` then warned that the failures of every task are told to no one (outside-in
probe): the import says it too, in validate's words, and for a MAILTO address names the
Apprise e-mail URL to add, without making up a mail server's credentials.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_rig import Invoke, cli_in

UNTOLD = (
    "no `notify:` channel: the failures of {n} task(s) ({names}) are recorded but told to no one"
)
TAB = "MAILTO=ops@example.com\n0 1 * * * /usr/bin/alpha\n0 2 * * * /usr/bin/beta\n"
OLD = "tasks:\n  old:\n    every: 1h\n    command: [echo, old]\n"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    return cli_in(tmp_path, monkeypatch, joined=True)


def test_an_import_with_no_channel_says_failures_reach_no_one_as_validate_does(
    cli: Invoke, tmp_path: Path
) -> None:
    (tmp_path / "agentcron.yaml").write_text(OLD)
    (tmp_path / "tab").write_text(TAB)
    words = UNTOLD.format(n=3, names="alpha, beta, old")
    dry = cli("import", "crontab", "tab")
    assert f"warning: {words}" in dry
    out = cli("import", "crontab", "tab", "--apply")
    assert f"warning: {words}" in out
    assert words in cli("validate")  # the same words as validate's
    # the address cron mailed to, as an Apprise URL, and no credentials made up
    assert "mailto://localhost?to=ops@example.com" in out
    assert "mailtos://USER:${SMTP_PASSWORD}@SMTP_HOST?to=ops@example.com" in out
    data = json.loads(cli("import", "crontab", "tab", "--json"))
    assert any(words in w for w in data["warnings"])


def test_an_import_into_the_database_with_no_channel_says_so_too(
    cli: Invoke, tmp_path: Path
) -> None:
    (tmp_path / "tab").write_text(TAB)
    out = cli("import", "crontab", "tab", "--to", "db", "--apply")
    assert "warning: " + UNTOLD.format(n=2, names="alpha, beta") in out


def test_a_config_with_a_channel_gets_no_such_warning(cli: Invoke, tmp_path: Path) -> None:
    (tmp_path / "agentcron.yaml").write_text("notify: ['json://localhost:9/hook']\n" + OLD)
    (tmp_path / "tab").write_text(TAB)
    out = cli("import", "crontab", "tab", "--apply")
    assert "told to no one" not in out
    assert "told to no one" not in cli("import", "crontab", "tab", "--to", "db")


def test_a_mailto_of_a_local_user_is_said_to_need_an_address(cli: Invoke, tmp_path: Path) -> None:
    (tmp_path / "tab").write_text("MAILTO=root\n0 1 * * * /usr/bin/alpha\n")
    out = cli("import", "crontab", "tab")
    assert "told to no one" in out
    assert "MAILTO=root names a mailbox on this machine" in out
