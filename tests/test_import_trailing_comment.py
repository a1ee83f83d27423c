"""A comment after the last task stays after the tasks when `--apply` adds new ones.

ruamel keeps the comment lines that follow a mapping on its last value: the new tasks
were written below the old last task, and the comment that ended the file (or headed
the next key) ended up between the old tasks and the new (outside-in probe).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agentcron.config import load_config
from cli_rig import Invoke, cli_in

TAB = "0 3 * * * /usr/local/bin/backup.sh\n"
NEW = "  # imported from crontab line 1"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    (tmp_path / "tab").write_text(TAB)
    return cli_in(tmp_path, monkeypatch)


def _apply(cli: Invoke, tmp_path: Path, config: str) -> str:
    path = tmp_path / "agentcron.yaml"
    path.write_text(config)
    cli("import", "crontab", "tab", "--apply")
    text = path.read_text()
    assert set(load_config(path).tasks) == {"old", "backup"}
    return text


def test_a_comment_block_ending_the_file_stays_at_its_end(cli: Invoke, tmp_path: Path) -> None:
    text = _apply(
        cli,
        tmp_path,
        "tasks:\n"
        "  old:\n"
        '    cron: "0 * * * *"\n'
        "    command: [echo, old]  # said on its line\n"
        "  # TODO: more tasks later\n"
        "  # (end of tasks)\n",
    )
    assert "    command: [echo, old]  # said on its line\n" + NEW in text
    assert text.endswith(
        "imported_from: crontab:077f5ba9645b-bfb900\n"
        + ("  # TODO: more tasks later\n  # (end of tasks)\n")
    )


def test_a_comment_heading_the_next_key_stays_above_it(cli: Invoke, tmp_path: Path) -> None:
    text = _apply(
        cli,
        tmp_path,
        'tasks:\n  old:\n    cron: "0 * * * *"\n    command: [echo, old]\n    paused: true\n\n'
        "# where the alarms go\nnotify: []\n",
    )
    assert text.index("backup:") < text.index("# where the alarms go")
    assert "imported_from: crontab:077f5ba9645b-bfb900\n\n# where the alarms go\nnotify: []\n" in (
        text
    )


@pytest.mark.parametrize(
    "last",
    [
        "    llm:\n      base_url: http://x\n      model: m\n      prompt: |\n        hi\n",
        "    command:\n      - echo\n      - old\n",
    ],
)
def test_after_a_block_text_or_a_list_too(cli: Invoke, tmp_path: Path, last: str) -> None:
    text = _apply(
        cli,
        tmp_path,
        'tasks:\n  old:\n    cron: "0 * * * *"\n' + last + "\n# the end\n",
    )
    assert text.index("backup:") < text.index("# the end")
    assert text.endswith("# the end\n")
