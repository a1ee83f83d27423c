"""Bad databases (issue 11, item 8): damaged, foreign, or named wrongly by ``--db``.

Each is refused with one readable error that names the file, says what is wrong and
what to do, and leaves the file (and the file system around it) as it was.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentcron import Scheduler
from agentcron.interfaces.cli import app
from agentcron.interfaces.doctor import diagnose
from agentcron.model import TaskSource
from agentcron.store import StoreError, open_store, parse_db_url
from agentcron.store.sqlite import SQLiteStore


# ---- helpers ------------------------------------------------------------------------------
def build_db(path: Path, tasks: int = 300) -> None:
    """A real agentcron database with enough rows to span ~100 pages."""
    store = SQLiteStore(path)
    sched = Scheduler(home=path.parent)
    now = datetime.now(UTC)
    try:
        for i in range(tasks):
            spec = sched.add(f"task-{i:04d}", command=["true", "x" * 200], every="1h")
            store.upsert_task(spec, TaskSource.API, now, None)
    finally:
        store.close()
    assert not Path(f"{path}-wal").exists()  # everything is in the main file


def damage(path: Path, first_fraction: float) -> None:
    """Overwrite every page from ``first_fraction`` of the file to its end with garbage,
    leaving page 1 (the header and the schema) as it was."""
    data = path.read_bytes()
    page_size = int.from_bytes(data[16:18], "big")
    pages = len(data) // page_size
    first = max(2, int(pages * first_fraction))
    rng = random.Random(11)
    with path.open("r+b") as fh:
        for page in range(first, pages):  # 0-based index: page number page + 1
            fh.seek(page * page_size)
            fh.write(rng.randbytes(page_size))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def journal_mode(path: Path) -> str:
    db = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True)
    try:
        return str(db.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        db.close()


def run_cli(cwd: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentcron", "--home", str(home), *args],
        cwd=cwd,
        env={**os.environ, "AGENTCRON_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def damaged_home(tmp_path: Path) -> Path:
    """A home whose database opens (header, schema, meta intact) but whose task pages
    are garbage: the damage only shows when a command reads them."""
    home = tmp_path / "home"
    home.mkdir()
    build_db(home / "agentcron.db")
    damage(home / "agentcron.db", 0.5)
    return home


# ---- 1. damaged pages -----------------------------------------------------------------------
def test_damage_met_by_a_later_query_is_a_store_error_in_words(damaged_home: Path) -> None:
    path = damaged_home / "agentcron.db"
    store = SQLiteStore(path)  # the pages read at open are intact
    try:
        with pytest.raises(StoreError) as caught:
            store.list_tasks()
        message = str(caught.value)
        assert str(path) in message
        assert "the database file is damaged" in message
        assert "database disk image is malformed" in message
        assert ".recover" in message and "backup" in message
        # errors that are not damage keep their own type
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            store._q("SELECT * FROM no_such_table")
        with pytest.raises(StoreError, match="quick_check found"):
            store.check_integrity()
    finally:
        store.close()


def test_a_healthy_database_passes_the_integrity_check(tmp_path: Path) -> None:
    build_db(tmp_path / "agentcron.db", tasks=20)
    store = SQLiteStore(tmp_path / "agentcron.db")
    try:
        store.check_integrity()
        assert len(store.list_tasks()) == 20
    finally:
        store.close()


def test_damage_met_at_open_says_damaged_too(tmp_path: Path) -> None:
    path = tmp_path / "agentcron.db"
    build_db(path)
    damage(path, 0.0)  # from page 2 on: the meta table is gone as well
    with pytest.raises(StoreError, match="the database file is damaged") as caught:
        SQLiteStore(path)
    assert str(path) in str(caught.value)


def test_cli_on_a_damaged_database_exits_non_zero_with_one_line(damaged_home: Path) -> None:
    before = digest(damaged_home / "agentcron.db")
    res = run_cli(damaged_home.parent, damaged_home, "list")
    assert res.returncode == 1, res
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ")
    assert str(damaged_home / "agentcron.db") in lines[0]
    assert "the database file is damaged" in lines[0]
    assert digest(damaged_home / "agentcron.db") == before


def test_doctor_reports_damage_as_a_fail_line(damaged_home: Path) -> None:
    res = run_cli(damaged_home.parent, damaged_home, "doctor")
    assert res.returncode == 1, res
    assert "Traceback" not in res.stdout + res.stderr
    database = [line for line in res.stdout.splitlines() if line.startswith("✖ database:")]
    assert len(database) == 1, res.stdout
    assert "the database file is damaged" in database[0]


def test_doctor_finds_damage_no_query_of_its_own_reads(tmp_path: Path) -> None:
    """Only the last pages are garbage; ``doctor``'s own queries may not touch them, so
    the integrity check is what must catch it."""
    home = tmp_path / "home"
    home.mkdir()
    build_db(home / "agentcron.db")
    damage(home / "agentcron.db", 0.97)
    report = diagnose(tmp_path / "agentcron.yaml", home, None)
    assert report["ok"] is False
    database = [c for c in report["checks"] if c["name"] == "database"]
    assert [c["status"] for c in database] == ["fail"]
    assert "the database file is damaged" in database[0]["message"]


def test_run_refuses_a_damaged_database_before_writing_to_it(damaged_home: Path) -> None:
    """The daemon would write (its node row, the config's tasks) before it ever read the
    damaged pages; ``run`` checks the whole file first."""
    path = damaged_home / "agentcron.db"
    before = digest(path)
    config = damaged_home.parent / "agentcron.yaml"
    config.write_text('tasks:\n  idle:\n    every: 1h\n    command: ["true"]\n')
    res = run_cli(damaged_home.parent, damaged_home, "run", "--config", str(config))
    assert res.returncode == 1, res
    assert "Traceback" not in res.stderr
    assert "cannot start" in res.stderr and "the database file is damaged" in res.stderr
    assert digest(path) == before
    # nothing made but the two daemon locks (the home's and its database file's)
    assert sorted(os.listdir(damaged_home)) == [
        "agentcron.db",
        "agentcron.db.daemon.lock",
        "daemon.lock",
    ]


def test_the_python_api_refuses_a_damaged_database_too(damaged_home: Path) -> None:
    before = digest(damaged_home / "agentcron.db")
    sched = Scheduler(home=damaged_home)
    sched.add("idle", command=["true"], every="1h")
    with pytest.raises(StoreError, match="the database file is damaged"):
        asyncio.run(asyncio.wait_for(sched.run_async(asyncio.Event()), 30))
    assert digest(damaged_home / "agentcron.db") == before
    store = SQLiteStore(damaged_home / "agentcron.db")
    try:
        assert store.nodes() == []  # no daemon registered itself in the damaged file
    finally:
        store.close()


# ---- 2. someone else's database -------------------------------------------------------------
def foreign_db(path: Path, *, wal: bool, meta: bool = False) -> None:
    db = sqlite3.connect(path)
    if wal:
        db.execute("PRAGMA journal_mode = WAL")
    if meta:
        db.execute("CREATE TABLE meta (k TEXT, v TEXT)")  # a 'meta' of another shape
    db.execute("CREATE TABLE people (name TEXT)")
    db.execute("INSERT INTO people VALUES ('ada')")
    db.commit()
    db.close()


@pytest.mark.parametrize(
    ("wal", "meta"), [(False, False), (True, False), (False, True), (True, True)]
)
def test_a_foreign_database_is_refused_and_left_exactly_as_it_was(
    tmp_path: Path, wal: bool, meta: bool
) -> None:
    path = tmp_path / "theirs.db"
    foreign_db(path, wal=wal, meta=meta)
    before, mode, files = digest(path), journal_mode(path), sorted(os.listdir(tmp_path))
    assert mode == ("wal" if wal else "delete")
    with pytest.raises(StoreError, match="not an agentcron database") as caught:
        SQLiteStore(path)
    assert str(path) in str(caught.value)
    assert "has not changed it" in str(caught.value)
    assert digest(path) == before
    assert journal_mode(path) == mode
    assert sorted(os.listdir(tmp_path)) == files  # no -wal, -shm or -journal left


def test_a_file_that_is_not_sqlite_is_refused_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("shopping: bread, milk\n" * 20)
    before = digest(path)
    with pytest.raises(StoreError, match="not an SQLite file"):
        SQLiteStore(path)
    assert digest(path) == before
    assert os.listdir(tmp_path) == ["notes.db"]


def test_cli_refuses_a_foreign_database_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "theirs.db"
    foreign_db(path, wal=False)
    before = digest(path)
    result = CliRunner().invoke(app, ["--home", str(tmp_path / "home"), "--db", str(path), "list"])
    assert result.exit_code == 1, result.output
    assert "not an agentcron database" in result.output
    assert str(path) in result.output
    assert digest(path) == before


# ---- 3. what --db accepts -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "kind", "path"),
    [
        (None, "sqlite", "HOME/agentcron.db"),
        ("", "sqlite", "HOME/agentcron.db"),
        ("sqlite:///var/lib/ac.db", "sqlite", "/var/lib/ac.db"),
        ("sqlite:////var/lib/ac.db", "sqlite", "/var/lib/ac.db"),
        ("sqlite:////root.db", "sqlite", "/root.db"),
        ("./state.db", "sqlite", "state.db"),
        ("data/agentcron", "sqlite", "data/agentcron"),
        ("agentcron.sqlite3", "sqlite", "agentcron.sqlite3"),
        ("AGENTCRON.DB", "sqlite", "AGENTCRON.DB"),
        ("postgresql://u@h/db", "postgresql", None),
        ("postgres://u@h/db", "postgresql", None),
    ],
)
def test_db_values_that_are_accepted(value: str | None, kind: str, path: str | None) -> None:
    home = Path("/srv/home")
    target = parse_db_url(value, home)
    assert target.kind == kind
    expected = None if path is None else Path(path.replace("HOME", str(home)))
    assert target.path == expected
    assert target.default is (value in (None, ""))


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("notaurl", "neither a URL nor a file path"),
        ("postgresq://u@h/db", "unsupported scheme postgresq://"),
        ("mysql://u:secret@h/db", "unsupported scheme mysql://"),
        ("sqlite://x.db", "sqlite:///PATH"),
        ("sqlite://", "sqlite:///PATH"),
        ("sqlite:///", "sqlite:///PATH"),
        ("sqlite:///relative.db", "names /relative.db, a file at the filesystem's root"),
    ],
)
def test_db_values_that_are_refused(value: str, words: str) -> None:
    with pytest.raises(StoreError, match=words.replace(".", r"\.")) as caught:
        parse_db_url(value, Path("/srv/home"))
    if "://" in value and not value.startswith("sqlite"):
        assert "@" not in str(caught.value)  # a URL's user and password are not echoed
    else:
        assert repr(value) in str(caught.value)


def test_db_notaurl_creates_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["--home", str(tmp_path / "home"), "--db", "notaurl", "list"])
    assert result.exit_code == 1, result.output
    assert "'notaurl'" in result.output and ".db" in result.output
    assert os.listdir(tmp_path) == []  # neither ./notaurl nor the home


@pytest.mark.parametrize("form", ["url", "absolute", "relative"])
def test_db_in_a_missing_folder_is_an_error_that_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    monkeypatch.chdir(tmp_path)
    value = {
        "url": f"sqlite://{tmp_path}/nonexistent/dir/x.db",
        "absolute": f"{tmp_path}/nonexistent/dir/x.db",
        "relative": "nonexistent/dir/x.db",
    }[form]
    result = CliRunner().invoke(app, ["--home", str(tmp_path / "home"), "--db", value, "list"])
    assert result.exit_code == 1, result.output
    assert "does not exist" in result.output
    assert "nonexistent/dir" in result.output
    assert not (tmp_path / "nonexistent").exists()
    with pytest.raises(StoreError, match="does not exist"):
        open_store(value, tmp_path / "home")
    assert os.listdir(tmp_path) == []


def test_db_path_in_an_existing_folder_is_created_by_add_not_by_a_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read command over a mistyped path made an empty database, showed every task
    "not firing" and exited 0 (outside-in probe): it is refused; `add` makes it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "state").mkdir()
    runner = CliRunner()
    for value in ("state/a.db", f"sqlite://{tmp_path}/state/b.sqlite", "c.sqlite3"):
        home = ["--home", str(tmp_path / "home"), "--db", value]
        refused = runner.invoke(app, [*home, "list", "--json"])
        assert refused.exit_code == 1, refused.output
        assert "no database at " in refused.output and "check the path" in refused.output
        added = runner.invoke(app, [*home, "add", "t", "--every", "1h", "--", "true"])
        assert added.exit_code == 0, added.output
        listed = runner.invoke(app, [*home, "list", "--json"])
        assert listed.exit_code == 0, listed.output
        assert [t["name"] for t in json.loads(listed.stdout)] == ["t"]
    assert (tmp_path / "state" / "a.db").is_file()
    assert (tmp_path / "state" / "b.sqlite").is_file()
    assert (tmp_path / "c.sqlite3").is_file()


def test_db_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.db").mkdir()
    with pytest.raises(StoreError, match="is a folder"):
        open_store(str(tmp_path / "x.db"), tmp_path / "home")


def test_the_default_home_database_still_creates_the_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "new" / "home"
    result = CliRunner().invoke(app, ["--home", str(home), "list", "--json"])
    assert result.exit_code == 0, result.output
    assert (home / "agentcron.db").is_file()


def test_malformed_json_in_one_row_is_not_a_damaged_database(tmp_path: Path) -> None:
    """SQLite calls a row's bad JSON "malformed JSON", an ordinary error: it must not be
    worded as a damaged file (whose advice is to move the whole database aside)."""
    import sqlite3

    from agentcron.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "agentcron.db")
    try:
        with store._tx() as db:
            db.execute("CREATE TABLE scratch (t TEXT)")
            db.execute("INSERT INTO scratch VALUES ('{not json')")
        with pytest.raises(sqlite3.OperationalError, match="malformed JSON") as caught:
            store._q("SELECT json_extract(t, '$.a') FROM scratch")
        assert "damaged" not in str(caught.value)
    finally:
        store.close()


def test_a_database_missing_under_a_running_daemon_is_not_created_by_a_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Moved aside (or deleted) while a daemon runs: `health`, `list` and `doctor` must
    not make a new empty file there (it would show no tasks and no runs as if all were
    well, and closing it deletes the write-ahead log the daemon still writes to)."""
    import agentcron.store
    from agentcron.instance_lock import InstanceLock

    monkeypatch.setattr(agentcron.store, "STARTING_WAIT", 0.2)  # (see the test below)
    home = tmp_path / "home"
    home.mkdir()
    lock = InstanceLock(home)  # what a running daemon holds
    lock.acquire()
    try:
        for args in (["list"], ["health"], ["runs"]):
            result = CliRunner().invoke(app, ["--home", str(home), *args])
            assert result.exit_code != 0, result.output
            assert "is missing, but a daemon (pid" in result.output, result.output
            assert "Nothing was created" in result.output
        report = CliRunner().invoke(app, ["--home", str(home), "doctor", "--json"])
        assert "is missing, but a daemon" in report.output
        assert not (home / "agentcron.db").exists()
    finally:
        lock.release()
    # no daemon: a first command makes the home's database as before
    assert CliRunner().invoke(app, ["--home", str(home), "list"]).exit_code == 0
    assert (home / "agentcron.db").exists()


def test_a_command_does_not_upgrade_the_database_under_an_older_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside-in probe: `agentcron list` of a newly installed version upgraded the schema
    under the older daemon still running on it, which then failed every tick without a
    word. The command refuses, names the daemon and both versions, and changes nothing;
    once that daemon is gone it upgrades as before."""
    import contextlib
    import sqlite3

    import agentcron.store
    from agentcron.instance_lock import InstanceLock
    from agentcron.store.migrations import SCHEMA_VERSION
    from agentcron.store.sqlite import SQLiteStore

    monkeypatch.setattr(agentcron.store, "STARTING_WAIT", 0.2)
    home = tmp_path / "home"
    home.mkdir()
    store = SQLiteStore(home / "agentcron.db")
    with store._tx() as db:  # as the version before the last migration (20) left it
        db.execute("DROP INDEX incidents_task")
    old = SCHEMA_VERSION - 1
    store.set_meta("schema_version", str(old))
    store.close()

    def version() -> str:
        with contextlib.closing(sqlite3.connect(home / "agentcron.db")) as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return str(row[0])

    lock = InstanceLock(home)  # what the older daemon holds
    lock.acquire()
    try:
        for args in (["list"], ["health"], ["runs"]):
            result = CliRunner().invoke(app, ["--home", str(home), *args])
            assert result.exit_code == 1, result.output
            said = " ".join(result.output.split())
            assert f"is an older agentcron (schema {old})" in said, said
            assert f"to schema {SCHEMA_VERSION} under it" in said and "(pid " in said, said
            assert version() == str(old)  # nothing changed
    finally:
        lock.release()
    assert CliRunner().invoke(app, ["--home", str(home), "list"]).exit_code == 0
    assert version() == str(SCHEMA_VERSION)


def test_a_version_that_cannot_be_read_under_a_daemon_is_said_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The look at the schema version before a command opens a database a daemon runs
    on: a file it cannot read is not taken for "nothing to upgrade" (which opened it)."""
    import agentcron.store
    from agentcron.instance_lock import InstanceLock

    monkeypatch.setattr(agentcron.store, "STARTING_WAIT", 0.2)
    home = tmp_path / "home"
    home.mkdir()
    damaged = b"this is not a database " * 200
    (home / "agentcron.db").write_bytes(damaged)
    lock = InstanceLock(home)
    lock.acquire()
    try:
        result = CliRunner().invoke(app, ["--home", str(home), "list"])
    finally:
        lock.release()
    said = " ".join(result.output.split())
    assert result.exit_code == 1, said
    assert "cannot read the schema version of" in said and "not a database" in said, said
    assert "nothing was opened or changed" in said, said
    assert (home / "agentcron.db").read_bytes() == damaged


def test_a_command_run_as_a_daemon_starts_waits_for_its_new_database(tmp_path: Path) -> None:
    """A daemon takes the home's lock, then makes its database: a command run in that
    moment was refused as if the file had been moved under the daemon (a test that
    listed tasks right after starting a daemon met it)."""
    import threading

    from agentcron.instance_lock import InstanceLock
    from agentcron.store.sqlite import SQLiteStore

    home = tmp_path / "home"
    home.mkdir()
    lock = InstanceLock(home)
    lock.acquire()

    def daemon_makes_its_database() -> None:
        time.sleep(0.5)
        SQLiteStore(home / "agentcron.db").close()

    maker = threading.Thread(target=daemon_makes_its_database)
    maker.start()
    try:
        result = CliRunner().invoke(app, ["--home", str(home), "list", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == []
    finally:
        maker.join()
        lock.release()
