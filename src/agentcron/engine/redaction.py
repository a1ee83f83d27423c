"""What is written about a run holds no secret: the values to remove, and the kept file.

Redaction happens when a run's record is written, with the secrets of the daemon
that ran it (its environment as it is then, plus the task's own), because a later
reader (``agentcron logs`` from another shell, the dashboard, a delivery) may not
have them and could not remove them. Reading redacts again, as a second layer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from pathlib import Path

from agentcron.actions.output import redact_file
from agentcron.config._env import env_file_values, expand_spec, spec_needs_expansion
from agentcron.home import secure_home
from agentcron.model import TaskSpec
from agentcron.redact import daemon_secrets, secret_values_from_env

log = logging.getLogger("agentcron.runner")

_SECRET_HEADER = re.compile(r"authorization|cookie|key|token|secret|password", re.IGNORECASE)


def task_secrets(spec: TaskSpec) -> list[str]:
    """Secret values a run of ``spec`` may print or echo back: those of the daemon's
    environment as it is now (which a command inherits) and of the config's
    ``env_file``, of the task's own ``env``, the llm task's API key whatever its
    variable is called, and the values of an http task's credential headers (with
    and without their ``Bearer`` word), ``${NAME}`` placeholders expanded as the
    action saw them. Placeholders elsewhere (``${DATA_DIR}`` in a command) are not
    secrets by themselves; their variables are when their names say so."""
    spec = _as_run(spec)
    found = [
        *daemon_secrets(),
        *secret_values_from_env(env_file_values()),
        *secret_values_from_env(spec.env),
    ]
    if spec.llm is not None and spec.llm.api_key_env:
        key = spec.env.get(spec.llm.api_key_env) or os.environ.get(spec.llm.api_key_env)
        if key:
            found.append(key)
    if spec.http is not None:
        for name, value in spec.http.headers.items():
            if value and _SECRET_HEADER.search(name):
                found += [value, value.split(None, 1)[-1]]
    return found


_INLINE_REDACT_BYTES = 16 * 1024  # smaller outputs are redacted on the loop
_private_homes: set[str] = set()


async def keep_output_private(
    home: Path, path: str, spec: TaskSpec, kept: bool | None = None
) -> None:
    """Remove secrets from an attempt's output file before its end is recorded.

    Redacted now, with the secrets of the daemon that ran the task, so that whoever
    reads the file later (``logs``, a delivery, the next run's context) sees no
    secret whatever their own environment. A small file costs less than a thread
    hop and is done on the loop; a large one in a thread, piece by piece. The home
    is made private (0700) before the first output this process keeps in it.
    Failing to redact (a full disk) leaves the file as written, 0600, and says so.

    ``kept`` is what the runner knows of the file once the action has returned:
    False when the action said it kept none (an inline call that returned nothing)
    or the file was looked for and not there; the file is then not looked for again
    (a ``stat`` per run, in a burst of short runs). None (not known: the attempt
    ended some other way) and True look.
    """
    if str(home) not in _private_homes:
        _private_homes.add(str(home))
        await asyncio.to_thread(secure_home, home)
    if kept is False:
        return
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return  # the run kept no file (nothing printed, or it never started): nothing to do
    except OSError as exc:
        # (not "secrets: ...": the log's own redaction would take the error for one)
        log.error("cannot look at the output %s (for secrets to remove): %s", path, exc)
        return
    if size == 0:
        return
    secrets = task_secrets(spec)
    try:
        if size <= _INLINE_REDACT_BYTES:
            redact_file(path, secrets)
        else:
            await asyncio.to_thread(redact_file, path, secrets)
    except OSError as exc:
        log.error(
            "could not remove secrets from the output %s (%s); it is kept as written, "
            "readable by its owner only",
            path,
            exc.strerror or exc,
        )


def _as_run(spec: TaskSpec) -> TaskSpec:
    """``spec`` with the placeholders its action saw expanded (as given if they cannot
    be: the action failed on that, and said so)."""
    if not spec_needs_expansion(spec):
        return spec
    try:
        return expand_spec(spec)
    except ValueError:
        return spec
