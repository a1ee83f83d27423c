"""A system crontab (/etc/crontab, /etc/cron.d/*: a user column after the schedule), and
a crontab read from standard input (``crontab -l | agentcron import crontab -``).

A system crontab's lines were imported with the user as the command's first word
(``root cd / && run-parts …``, every run failing with "root: not found"), and ``-``
was a file that did not exist (outside-in probe).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agentcron.config import load_config
from cli_rig import Invoke, cli_in

HOURLY = "cd / && run-parts --report /etc/cron.hourly"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    return cli_in(tmp_path, monkeypatch)


def _commands(out: str) -> dict[str, object]:
    return {t["name"]: t["task"]["command"] for t in json.loads(out)["tasks"]}


def test_a_crontab_whose_every_entry_names_a_user_is_read_as_a_system_crontab(
    cli: Invoke, tmp_path: Path
) -> None:
    (tmp_path / "system.crontab").write_text(
        "SHELL=/bin/sh\n"
        f"17 * * * * root {HOURLY}\n"
        "@daily root /usr/bin/tidy --all\n"
        "0 3 * * * nobody /usr/bin/backup\n"
    )
    data = cli("import", "crontab", "system.crontab", "--json")
    assert _commands(data) == {
        "run-parts": HOURLY,
        "tidy": "/usr/bin/tidy --all",
        "backup": "/usr/bin/backup",
    }
    notes = {t["name"]: [n["reason"] for n in t["notes"]] for t in json.loads(data)["tasks"]}
    assert any("cron ran it as root" in r and "daemon" in r for r in notes["run-parts"])
    assert any("cron ran it as nobody" in r for r in notes["backup"])
    text = cli("import", "crontab", "system.crontab")
    assert "a system crontab" in text and "the user column" in text
    assert "the command starts with 'root'" not in text


def test_a_file_under_etc_cron_d_has_its_user_column_removed(
    cli: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By its place a file is a system crontab, whatever user its lines name."""
    folder = tmp_path / "cron.d"
    folder.mkdir()
    monkeypatch.setattr(
        "agentcron.importers._cron_lines.SYSTEM_FOLDERS", (str(folder),), raising=False
    )
    (folder / "php").write_text(
        "*/5 * * * * www-data php /var/www/html/cron.php\n0 4 * * * alice /home/alice/x.sh\n"
    )
    data = cli("import", "crontab", str(folder / "php"), "--json")
    assert _commands(data) == {"cron": "php /var/www/html/cron.php", "x": "/home/alice/x.sh"}


def test_a_user_crontab_with_one_line_naming_a_user_is_not_changed(
    cli: Invoke, tmp_path: Path
) -> None:
    (tmp_path / "tab").write_text("0 12 * * * root /usr/bin/sysjob\n0 1 * * * /usr/bin/run\n")
    out = cli("import", "crontab", "tab", "--json")
    assert _commands(out)["root"] == "root /usr/bin/sysjob"
    if shutil.which("sync"):  # a user of Debian's, and a program: read as the program
        (tmp_path / "tab").write_text("0 1 * * * sync --file-system /srv\n")
        out = cli("import", "crontab", "tab", "--json")
        assert _commands(out) == {"sync": "sync --file-system /srv"}


def test_a_crontab_from_standard_input(cli: Invoke, tmp_path: Path) -> None:
    out = cli("import", "crontab", "-", "--apply", input="0 1 * * * /usr/bin/run.sh\n")
    assert "from standard input" in out
    assert load_config(tmp_path / "agentcron.yaml").tasks["run"].cron == "0 1 * * *"
    out = cli("import", "crontab", "-", input="", code=1)
    assert "standard input is empty: nothing to import" in out


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("hermes", "not a Hermes jobs file"),
        ("openclaw", "not an OpenClaw cron file"),
        ("agent-zero", "not an Agent Zero task file"),
    ],
)
def test_a_jobs_file_from_standard_input_that_is_not_one_says_standard_input(
    cli: Invoke, source: str, words: str
) -> None:
    """`-` is read as standard input by every importer; the agent schedulers' own
    refusals named it "-:" (outside-in probe)."""
    out = cli("import", source, "-", input='{"nope": 1}', code=1)
    assert f"standard input: {words}" in out, out
