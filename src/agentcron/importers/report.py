"""What ``agentcron import`` says: per task the YAML it would write and every note,
the jobs it leaves behind, the variables to set, and what to do at the source.

Each placed task is checked with the same rules as the config file before it is
shown as importable; placeholders the importer wrote are checked with values of
the right shape, so a variable you have not set yet does not hide a real problem
(it is listed under the variables instead, and stops ``--apply``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from agentcron.config._env import PlaceholderError, current_environ, names_in, strings_in
from agentcron.config.errors import ConfigError
from agentcron.config.loader import validate_task_mapping
from agentcron.importers._core import LLM_WARNING, SOURCE_NAMES, Note, Plan
from agentcron.importers._targets import SAMPLE_VALUES
from agentcron.importers._yaml_out import preview
from agentcron.importers.place import Placed, not_in_source

_HOW_TO_DISABLE = {
    "agent-zero": "set each one's state to disabled in Agent Zero's scheduler",
    "hermes": "pause each one in Hermes, so its enabled is false",
    "openclaw": "set enabled: false on each one with OpenClaw's cron tool",
    "crontab": "comment their lines out with `crontab -e`",
}


@dataclass
class Report:
    plan: Plan
    placed: list[Placed]
    not_imported: list[Note] = field(default_factory=list)
    variables: dict[str, tuple[str, bool]] = field(default_factory=dict)  # name -> (hint, set)
    not_in_source: list[tuple[str, str]] = field(default_factory=list)  # (task, imported_from)
    warnings: list[str] = field(default_factory=list)  # about the target (no notify: channel)
    unchanged: set[str] = field(default_factory=set)  # placed tasks the target holds as is


def build(
    plan: Plan,
    placed: list[Placed],
    conflicts: list[Note],
    defaults: Mapping[str, Any] | None,
    paused_now: Mapping[str, bool] | None = None,
    existing: Mapping[str, str | None] | None = None,
) -> Report:
    """Check every placed task and gather the variables; failing tasks leave ``placed``.
    ``existing``: the target's tasks (name -> ``imported_from``), for those this file
    no longer gives."""
    environ = current_environ()
    checking = {**{k: SAMPLE_VALUES.get(k, "sample") for k in _wanted(plan, placed)}, **environ}
    report = Report(plan, [], [*plan.skipped, *conflicts])
    report.not_in_source = not_in_source(plan, placed, existing or {})
    for item in placed:
        mapping = item.mapping((paused_now or {}).get(item.name, True))
        try:
            validate_task_mapping(item.name, mapping, defaults, environ=checking)
        except ConfigError as exc:
            reason = "; ".join(str(p) for p in exc.problems)
            report.not_imported.append(Note(item.draft.where or item.name, "", "error", reason))
            continue
        report.placed.append(item)
    for name in sorted(_wanted(plan, report.placed)):
        hint = plan.variables.get(name, "used by a task")
        report.variables[name] = (hint, name in environ)
    return report


def unset_keys(report: Report) -> list[str]:
    """A warning per placed ``llm`` task whose ``api_key_env`` is not set here: its
    runs would fail (each told) until the daemon's environment sets it. A warning, as
    ``validate`` says it: this shell may lack what the daemon's service sets."""
    said = []
    for item in report.placed:
        llm = item.draft.body.get("llm")
        name = llm.get("api_key_env") if isinstance(llm, Mapping) else None
        if isinstance(name, str) and not report.variables.get(name, ("", True))[1]:
            said.append(
                f"tasks.{item.name}.llm.api_key_env: variable {name} is not set here (it "
                "holds the key the model is called with): every run fails until the "
                "daemon's environment or the config's env_file sets it"
            )
    return said


def _wanted(plan: Plan, placed: list[Placed]) -> set[str]:
    names = set(plan.variables) if placed else set()
    for item in placed:
        # the variable an llm task reads its key from is one to set too: unset, every
        # run would fail with config_error, and the import said nothing (probe)
        llm = item.draft.body.get("llm")
        if isinstance(llm, Mapping) and isinstance(llm.get("api_key_env"), str):
            names.add(llm["api_key_env"])
        for path, text in strings_in(item.draft.body):
            if path[:1] == ("description",):
                continue  # shown as written, never expanded: no variable to set
            try:
                names.update(names_in(text))
            except PlaceholderError:
                continue  # a malformed placeholder is reported where the task is checked
    return names


def text(report: Report, target: str, applied: bool, enable: bool) -> str:
    """The report as a person reads it."""
    plan = report.plan
    source = SOURCE_NAMES.get(plan.source, plan.source)
    lines: list[str] = []
    what = "written" if applied else "would be written"
    count = len(report.placed)
    head = f"{source}: {count} task(s) from {plan.file} {what} to {target}"
    same = sum(item.name in report.unchanged for item in report.placed)
    if same and same == count:
        head = (
            f"{source}: {count} task(s) from {plan.file}, already in {target} as they "
            f"would be written: nothing {'was' if applied else 'would be'} changed"
        )
    elif same:
        head += f" ({same} of them already there as written, left unchanged)"
    lines.append(head + ("" if applied else " (dry run: nothing is written without --apply)"))
    if any("llm" in item.draft.body for item in report.placed):
        lines.append(f"note: {LLM_WARNING}")
    lines += [note.text(plan.file) for note in plan.notes]
    for item in report.placed:
        lines.append("")
        verb = f"updates task {item.name}" if item.update else f"new task {item.name}"
        if item.name in report.unchanged:
            verb = f"task {item.name}, unchanged"
        lines.append(f"# {item.draft.label} ({item.imported_from}): {verb}")
        mapping = item.mapping()
        if item.paused is None:
            lines.append("# (paused state left as it is)")
        lines.append(preview(item.name, mapping).rstrip("\n"))
        lines += [replace(note, task=item.name).text(plan.file) for note in item.draft.notes]
    if report.not_imported:
        lines.append("")
        lines.append("Not imported:")
        lines += [f"  {note.text(plan.file)}" for note in report.not_imported]
    if report.not_in_source:
        lines.append("")
        lines.append(
            f"Imported from {_a(source)} before, and not in this file (left as they are; "
            "if they came from this file, the job is gone there: remove the task here "
            "too, with `agentcron remove NAME` or from the config file):"
        )
        lines += [f"  {name} ({key})" for name, key in report.not_in_source]
    if report.variables:
        lines.append("")
        lines.append("Variables to set (in the environment, or in the file named by env_file:):")
        for name, (hint, is_set) in report.variables.items():
            state = "set" if is_set else "NOT SET"
            lines.append(f"  {name}: {state}: {hint}")
    if report.warnings:
        lines.append("")
        lines += [f"warning: {warning}" for warning in report.warnings]
    lines.append("")
    lines.append(_advice(report, enable, applied))
    return "\n".join(lines) + "\n"


def _a(source: str) -> str:
    """``a crontab``; a scheduler's name as it is (``Hermes``)."""
    return "a crontab" if source == "crontab" else source


def _advice(report: Report, enable: bool, applied: bool) -> str:
    how = _HOW_TO_DISABLE.get(report.plan.source, "disable them there")
    source = SOURCE_NAMES.get(report.plan.source, report.plan.source)
    if report.plan.source == "crontab":
        source = "the crontab"
    live = [i.name for i in report.placed if i.paused is False]
    if enable and live:
        when = "now" if applied else "first"
        return (
            f"{len(live)} task(s) {'are' if applied else 'will be'} enabled here: disable "
            f"these jobs in {source} {when} ({how}), or both will run them."
        )
    return (
        f"Imported tasks are written paused. Disable the jobs in {source} first ({how}), "
        "then `agentcron resume NAME` (or import again with --enable): two schedulers "
        "firing the same job is what you want least."
    )


def as_json(report: Report, target: str, applied: bool) -> dict[str, Any]:
    """The report for scripts."""

    def note(n: Note) -> dict[str, Any]:
        return {
            "task": n.task,
            "field": n.field,
            "kind": n.kind,
            "reason": n.reason,
            "line": n.line,
        }

    return {
        "source": report.plan.source,
        "file": report.plan.file,
        "target": target,
        "applied": applied,
        "tasks": [
            {
                "name": item.name,
                "imported_from": item.imported_from,
                "label": item.draft.label,
                "update": item.update,
                "unchanged": item.name in report.unchanged,
                "paused": item.paused,
                "task": item.mapping(),
                "notes": [note(replace(n, task=item.name)) for n in item.draft.notes],
            }
            for item in report.placed
        ],
        "not_imported": [note(n) for n in report.not_imported],
        "not_in_source": [
            {"name": name, "imported_from": key} for name, key in report.not_in_source
        ],
        "notes": [note(n) for n in report.plan.notes],
        "warnings": list(report.warnings),
        "variables": [
            {"name": name, "hint": hint, "set": is_set}
            for name, (hint, is_set) in report.variables.items()
        ],
    }
