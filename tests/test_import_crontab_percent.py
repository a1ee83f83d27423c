"""`%` in a crontab command as cron reads it: `\\%` is a literal `%` in the command
itself (`date +\\%F`, the common case), and the first unescaped `%` starts the input.
The input's escapes were tested; the command's were not."""

from __future__ import annotations

import subprocess
from datetime import date
from pathlib import Path

from agentcron.config._env import expand
from agentcron.importers import ImportOptions, make_plan


def _run(tmp_path: Path, line: str) -> tuple[str, str]:
    tab = tmp_path / "c"
    tab.write_text(line + "\n")
    (draft,) = make_plan("crontab", tab, ImportOptions()).drafts
    command = draft.body["command"]
    done = subprocess.run(
        ["/bin/sh", "-c", expand(command, {})], check=True, capture_output=True, text=True
    )
    return command, done.stdout


def test_escaped_percent_in_the_command_is_a_literal_percent(tmp_path: Path) -> None:
    command, out = _run(tmp_path, "0 1 * * * date +\\%Y-\\%m-\\%d")
    assert command == "date +%Y-%m-%d"
    assert out.strip() == date.today().isoformat()


def test_escaped_percent_in_the_command_and_unescaped_percent_for_its_input(
    tmp_path: Path,
) -> None:
    command, out = _run(tmp_path, "0 1 * * * sed s/x/\\%/ %ax%bx \\% c")
    assert command.endswith("| ( sed s/x/%/ )")
    assert out == "a%\nb% % c\n"  # each input line has its first x replaced


def test_a_setting_whose_value_holds_a_password_becomes_a_placeholder(tmp_path: Path) -> None:
    """Secrets probe: `DB_URL=postgresql://app:PW@db/x` (a name that does not say
    secret) was written into the config as it was; a value with a secret's shape is
    lifted out as a name's is."""
    tab = tmp_path / "c"
    tab.write_text("DB_URL=postgresql://app:cronDBPWLEAK@db/x\nHOST=db.example\n0 1 * * * sync\n")
    plan = make_plan("crontab", tab, ImportOptions())
    (draft,) = plan.drafts
    assert draft.body["env"] == {"DB_URL": "${DB_URL}", "HOST": "db.example"}
    assert "DB_URL" in plan.variables
    assert "cronDBPWLEAK" not in str(draft.body)
