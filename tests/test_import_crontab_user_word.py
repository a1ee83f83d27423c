"""A user crontab line whose command starts with a word that is also a user's name.

`mail`, `backup`, `news`… are users of Debian's as well as commands: a line of a user
crontab running `mail -s …` drew a warning about a system crontab's user column
(outside-in probe). It is said only where the file looks like a system crontab's
lines: two entries or more start with a user's name, or the name is root.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agentcron.importers import ImportOptions, make_plan
from agentcron.importers._cron_lines import is_user

OPTIONS = ImportOptions()


def _warned(tmp_path: Path, text: str) -> dict[str, list[str]]:
    path = tmp_path / "my.crontab"
    path.write_text(text)
    p = make_plan("crontab", path, OPTIONS)
    return {
        d.name: [n.reason for n in d.notes if n.field == "command" and "a user" in n.reason]
        for d in p.drafts
    }


def _need(*users: str) -> None:
    for user in users:
        if not is_user(user) or shutil.which(user):
            pytest.skip(f"this machine has no user {user!r} that is not also a program")


def test_one_line_whose_command_is_a_users_name_draws_no_warning(tmp_path: Path) -> None:
    _need("mail")
    warned = _warned(tmp_path, "0 1 * * * mail -s hi me@x < /tmp/f\n0 2 * * * /usr/bin/run\n")
    assert warned == {"mail": [], "run": []}


def test_lines_of_a_system_crontab_in_a_user_crontab_are_still_said(tmp_path: Path) -> None:
    _need("www-data", "daemon")
    warned = _warned(
        tmp_path,
        "*/5 * * * * www-data php /var/www/cron.php\n"
        "0 2 * * * daemon /usr/bin/nightly\n"
        "0 3 * * * /usr/bin/run\n",
    )
    assert len(warned["www-data"]) == 1 and "2 line(s) of this file" in warned["www-data"][0]
    assert len(warned["daemon"]) == 1
    assert warned["run"] == []


def test_one_line_naming_root_is_still_said(tmp_path: Path) -> None:
    _need("root")
    warned = _warned(tmp_path, "0 12 * * * root /usr/bin/sysjob\n0 1 * * * /usr/bin/run\n")
    assert len(warned["root"]) == 1 and "user column" in warned["root"][0]
