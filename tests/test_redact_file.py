"""Redacting a kept output file in place (agentcron.actions.output.redact_file).

A file is read in pieces cut at line ends; these tests make the pieces tiny so that
every cut falls somewhere awkward, and check that no cut lets a secret through, that
bytes which are not UTF-8 survive, that a file with nothing to remove is left alone,
and that the cost grows with the size of the file.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from agentcron.actions import output
from agentcron.actions.output import redact_file

PEM = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\nAQEFAASCBKcwggSjAgEAAoIB\n-----END KEY-----"


@pytest.fixture
def tiny_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output, "REDACT_CHUNK", 7)
    monkeypatch.setattr(output, "_REDACT_MAX_CARRY", 64)


def test_a_file_with_nothing_to_remove_is_not_written(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    path.write_text("all fine\n" * 1000)
    before = os.stat(path)
    assert redact_file(path, ["hunter22"]) is False
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_secrets_go_and_the_file_becomes_private(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    path.write_text("start\nusing hunter22 now\nend\n")
    os.chmod(path, 0o644)
    assert redact_file(path, ["hunter22"]) is True
    assert path.read_text() == "start\nusing [REDACTED] now\nend\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not list(tmp_path.glob("*.redacting"))


def test_bytes_that_are_not_utf8_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    raw = b"\xff\xfe binary \x00\x80 hunter22 \xe2\x82 caf\xc3\xa9\n"
    path.write_bytes(raw)
    assert redact_file(path, ["hunter22"]) is True
    assert path.read_bytes() == raw.replace(b"hunter22", b"[REDACTED]")


@pytest.mark.usefixtures("tiny_pieces")
@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        # a known value longer than a piece
        ("a\nb\nthe value is hunter22hunter22 ok\nc\n", ["hunter22hunter22"], None),
        # a value on the line after its name: no cut between them
        ("x\ny\npassword:\n\n  correct-horse\nz\n", [], "x\ny\npassword:\n\n  [REDACTED]\nz\n"),
        (
            "log\nAuthorization: Bearer\nabcdefghijklmnop\nmore\n",
            [],
            "log\nAuthorization: [REDACTED]\nmore\n",  # the token on the next line too
        ),
        # a secret that spans lines (a PEM key in the environment) is found line by line
        (f"key follows\n{PEM}\ndone\n", [PEM], None),
        # a line longer than a piece may carry
        ("q" * 100 + " hunter22 " + "q" * 100 + "\n", ["hunter22"], None),
    ],
)
def test_no_cut_lets_a_secret_through(
    tmp_path: Path, text: str, secrets: list[str], expected: str | None
) -> None:
    path = tmp_path / "out.log"
    path.write_text(text)
    assert redact_file(path, secrets) is True
    got = path.read_text()
    if expected is not None:
        assert got == expected
    for secret in secrets:
        for line in secret.splitlines():
            if len(line) >= 4:
                assert line not in got, got
    assert "[REDACTED]" in got


def test_a_large_file_costs_time_in_proportion(tmp_path: Path) -> None:
    """Adversarial lines (names that announce a value on every line, URL-ish text) in
    an 8 MB file: a quadratic step anywhere would take minutes here."""
    line = "processing key: token=x password: ://host?api_key=1 Bearer 2026-01-01T00:00:00Z\n"
    path = tmp_path / "big.log"
    path.write_text(line * (8_000_000 // len(line)) + "the end hunter22\n")
    started = time.monotonic()
    assert redact_file(path, ["hunter22"]) is True
    assert time.monotonic() - started < 60  # about 1 s unloaded
    with path.open() as f:
        f.seek(os.path.getsize(path) - 30)
        assert f.read().endswith("the end [REDACTED]\n")
