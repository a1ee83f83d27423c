"""Delivery of an `llm` task's output end to end (PRODUCT.md §10, seed 001).

A real `agentcron run` runs an `llm` task against the fake OpenAI-compatible
server and delivers the output to a local `json://` webhook that can be told to
fail. Delivery must be separate from execution: retried from the kept file with
`delivery_backoff`, across a daemon restart, never by running the task again; the
run stays `succeeded` while its `delivery_status` moves; a deleted output file or
an exhausted budget ends delivery as `failed`, visibly, and the owner is told.

Tests wait by peeking at the database through the same service layer the CLI
uses (a CLI call costs seconds on a loaded machine) and assert through the CLI.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agentcron.service import Service
from agentcron.store import open_store
from daemon_proc import DaemonProc, wait_for
from e2e_sink import Sink
from fake_openai import FakeOpenAI, completion

pytestmark = pytest.mark.slow

KEY = "sk-e2e-delivery-7d41c9e2b8a0"
NEVER = "2099-01-01T00:00:00+00:00"  # an `at` that keeps tasks idle until triggered
NOTIFY = "/notify"
RTO = "?rto=20"  # Apprise's read timeout, above any hold() a test makes
STORY = "The lighthouse keeper counted ships until the fog lifted.\n"


def _task(fake: FakeOpenAI, sink: Sink, path: str, backoff: list[str]) -> dict[str, Any]:
    return {
        "at": NEVER,
        "llm": {
            "base_url": fake.base_url,
            "model": "m",
            "api_key_env": "FAKE_KEY",
            "prompt": "Write the story of the day.",
        },
        "deliver": [sink.url(path + RTO)],
        "delivery_backoff": backoff,
    }


def _config(sink: Sink, tasks: dict[str, Any]) -> str:
    # YAML 1.2 is a superset of JSON: no quoting surprises in URLs.
    return json.dumps({"notify": [sink.url(NOTIFY)], "tasks": tasks}, indent=2)


@dataclass
class Rig:
    daemon: DaemonProc
    sink: Sink
    fakes: dict[str, FakeOpenAI]
    stack: ExitStack
    peek: Service | None = field(default=None)

    def start(self) -> None:
        """Start (or restart) the daemon; return once it runs."""
        before = len(self.daemon.daemon_log())
        self.daemon.start()
        # Readers open the database only after the daemon migrated it: two processes
        # creating one database at the same moment trip over each other.
        self.wait(
            "the daemon is up",
            lambda: "agentcron running as" in self.daemon.daemon_log()[before:],
        )
        if self.peek is None:
            store = open_store(None, self.daemon.home)
            self.stack.callback(store.close)
            self.peek = Service(store, self.daemon.home)

    def trigger(self, task: str) -> int:
        return int(self.daemon.json("trigger", task)["id"])

    def slot(self, run_id: int) -> dict[str, Any]:
        assert self.peek is not None
        view: dict[str, Any] = self.peek.run_detail(run_id)
        return view

    def wait(self, what: str, predicate: Callable[[], Any], timeout: float = 60.0) -> Any:
        try:
            return wait_for(predicate, timeout=timeout, what=what)
        except AssertionError as exc:
            log = "\n".join(self.daemon.daemon_log().splitlines()[-40:])
            raise AssertionError(f"{exc}\n--- daemon log ---\n{log}") from None

    def wait_delivery(self, run_id: int, status: str, timeout: float = 60.0) -> None:
        self.wait(
            f"run {run_id} delivery_status {status}",
            lambda: self.slot(run_id)["delivery_status"] == status,
            timeout,
        )

    def run(self, task: str, run_id: int) -> dict[str, Any]:
        """The run as `runs TASK --json` shows it."""
        [row] = [r for r in self.daemon.json("runs", task) if r["id"] == run_id]
        return dict(row)

    def listed(self, task: str) -> dict[str, Any]:
        """The task as `list --json` shows it."""
        [row] = [t for t in self.daemon.json("list") if t["name"] == task]
        return dict(row)

    def notices(self, task: str) -> list[str]:
        return [t for t in self.sink.texts(NOTIFY) if t.startswith(("⚠", "✖", "✔")) and task in t]

    def wait_notice(self, task: str, text: str) -> str:
        found: str = self.wait(
            f"a notification about {task} saying {text!r} (got {self.notices(task)!r})",
            lambda: next((n for n in self.notices(task) if text in n), None),
        )
        return found


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[Callable[[dict[str, list[str]]], Rig]]:
    """Build a daemon whose tasks (name -> delivery_backoff) each have their own fake
    model server and deliver to the sink path ``/NAME``."""
    with ExitStack() as stack:
        sink = stack.enter_context(Sink())

        def build(tasks: dict[str, list[str]]) -> Rig:
            fakes = {name: stack.enter_context(FakeOpenAI()) for name in tasks}
            config = _config(
                sink,
                {n: _task(fakes[n], sink, f"/{n}", backoff) for n, backoff in tasks.items()},
            )
            daemon = DaemonProc(tmp_path, config, {"FAKE_KEY": KEY})
            stack.callback(daemon.stop)
            rig = Rig(daemon, sink, fakes, stack)
            rig.start()
            return rig

        yield build


def test_delivery_is_retried_from_the_kept_file_and_the_task_runs_once(
    make_rig: Callable[[dict[str, list[str]]], Rig],
) -> None:
    rig = make_rig({"story": ["1s", "1s", "1s"]})
    rig.fakes["story"].add(completion(STORY))
    rig.sink.fail_next(2, "/story")
    rig.sink.hold("/story", 2)  # freeze the daemon between the 1st and 2nd attempt

    run_id = rig.trigger("story")
    assert rig.sink.wait_held(60), rig.daemon.daemon_log()
    try:
        run = rig.run("story", run_id)
        assert (run["status"], run["delivery_status"]) == ("succeeded", "retrying")
        listed = rig.listed("story")
        assert (listed["last_status"], listed["delivery_status"]) == ("succeeded", "retrying")
    finally:
        rig.sink.release()
    rig.wait_delivery(run_id, "delivered")

    run = rig.run("story", run_id)
    assert (run["status"], run["attempts"], run["delivery_status"]) == ("succeeded", 1, "delivered")
    assert rig.listed("story")["delivery_status"] == "delivered"
    assert len(rig.sink.rejected("/story")) == 2
    [delivered] = rig.sink.accepted("/story")
    assert delivered.body["message"] == STORY.strip() or delivered.body["message"] == STORY
    assert rig.fakes["story"].calls == 1  # delivered from the kept file, not by re-running
    assert len(rig.daemon.json("runs", "story")) == 1
    rig.wait_notice("story", "was delivered")


def test_a_daemon_restart_between_delivery_attempts_changes_nothing(
    make_rig: Callable[[dict[str, list[str]]], Rig],
) -> None:
    # A first backoff of 3 s leaves room to stop the daemon before the 2nd attempt.
    rig = make_rig({"story": ["3s", "1s", "1s"]})
    rig.fakes["story"].add(completion(STORY))
    rig.sink.fail_next(2, "/story")

    run_id = rig.trigger("story")
    rig.wait("the first delivery attempt fails", lambda: rig.sink.rejected("/story"))
    rig.daemon.stop()
    assert rig.sink.accepted("/story") == []
    stopped = rig.run("story", run_id)  # the CLI reads the record while no daemon runs
    assert (stopped["status"], stopped["delivery_status"]) == ("succeeded", "retrying")

    rig.start()
    rig.wait_delivery(run_id, "delivered")
    run = rig.run("story", run_id)
    assert (run["status"], run["attempts"], run["delivery_status"]) == ("succeeded", 1, "delivered")
    assert len(rig.sink.accepted("/story")) == 1
    assert rig.fakes["story"].calls == 1
    assert len(rig.daemon.json("runs", "story")) == 1


def test_delivery_that_never_succeeds_ends_failed_and_stays_visible(
    make_rig: Callable[[dict[str, list[str]]], Rig],
) -> None:
    rig = make_rig({"story": ["1s", "1s", "1s"]})
    rig.fakes["story"].add(completion(STORY))
    rig.sink.fail_next(1000, "/story")

    run_id = rig.trigger("story")
    rig.wait_delivery(run_id, "failed")
    assert len(rig.sink.rejected("/story")) == 4  # the first try and one per backoff step
    notice = rig.wait_notice("story", "after 4 attempts")
    assert notice.startswith("✖") and "could not be delivered to " in notice

    rig.daemon.stop()  # a restart neither resumes nor forgets a delivery that gave up
    rig.start()
    run = rig.run("story", run_id)
    assert (run["status"], run["delivery_status"]) == ("succeeded", "failed")
    listed = rig.listed("story")
    assert (listed["last_status"], listed["delivery_status"]) == ("succeeded", "failed")
    assert len(rig.sink.rejected("/story")) == 4
    assert rig.fakes["story"].calls == 1


def test_a_long_output_is_delivered_not_rejected(
    make_rig: Callable[[dict[str, list[str]]], Rig],
) -> None:
    paragraphs = [f"Paragraph {n:03d}: " + "the waves kept coming " * 7 for n in range(200)]
    text = "\n".join(paragraphs)[:30_000]
    assert len(text) == 30_000
    markers = [f"Paragraph {n:03d}:" for n in range(200) if f"Paragraph {n:03d}:" in text]
    rig = make_rig({"story": ["1s", "1s", "1s"]})
    rig.fakes["story"].add(completion(text, completion_tokens=7000))

    run_id = rig.trigger("story")
    rig.wait_delivery(run_id, "delivered")

    received = "\n".join(p.body["message"] for p in rig.sink.accepted("/story"))
    assert len(markers) > 100 and all(m in received for m in markers)
    assert len("".join(received.split())) == len("".join(text.split()))  # nothing lost
    assert rig.sink.rejected("/story") == []
    assert rig.run("story", run_id)["delivery_status"] == "delivered"


@dataclass(frozen=True)
class GoneScenario:
    run: dict[str, Any]
    listed: dict[str, Any]
    output_path: Path
    rejected: int
    notices: list[str]
    doctor: dict[str, Any]


@pytest.fixture(scope="module")
def gone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GoneScenario]:
    """The kept output file is deleted while its delivery waits for a retry."""
    folder = tmp_path_factory.mktemp("delivery_rm")
    with ExitStack() as stack:
        sink = stack.enter_context(Sink())
        fake = stack.enter_context(FakeOpenAI([completion(STORY)]))
        config = _config(sink, {"story": _task(fake, sink, "/story", ["2s", "2s", "2s"])})
        daemon = DaemonProc(folder, config, {"FAKE_KEY": KEY})
        stack.callback(daemon.stop)
        rig = Rig(daemon, sink, {"story": fake}, stack)
        rig.start()
        sink.fail_next(1000, "/story")

        run_id = rig.trigger("story")
        rig.wait("the first delivery attempt fails", lambda: sink.rejected("/story"))
        output_path = Path(rig.slot(run_id)["output_path"])
        output_path.unlink()
        rig.wait_delivery(run_id, "failed")
        rig.wait_notice("story", "✖")
        yield GoneScenario(
            run=rig.run("story", run_id),
            listed=rig.listed("story"),
            output_path=output_path,
            rejected=len(sink.rejected("/story")),
            notices=rig.notices("story"),
            doctor=json.loads(daemon.cli("doctor", "--json", check=False).stdout),
        )


def test_a_deleted_output_file_ends_delivery_as_failed_and_tells_the_owner(
    gone: GoneScenario,
) -> None:
    assert (gone.run["status"], gone.run["delivery_status"]) == ("succeeded", "failed")
    assert (gone.listed["last_status"], gone.listed["delivery_status"]) == ("succeeded", "failed")
    assert gone.rejected == 1  # nothing was sent once the file was gone
    final = gone.notices[-1]
    assert final.startswith("✖") and "could not be delivered" in final
    [check] = [c for c in gone.doctor["checks"] if c["name"] == "deliveries"]
    assert "the kept output file is gone" in check["message"]


def test_the_owner_is_told_why_a_deleted_output_could_not_be_delivered(
    gone: GoneScenario,
) -> None:
    final = gone.notices[-1]
    words = final.replace(str(gone.output_path), "<path>").lower()
    assert any(w in words for w in ("gone", "deleted", "missing", "no longer exists")), final
    assert "kept at" not in words, final  # it is not kept anywhere any more
