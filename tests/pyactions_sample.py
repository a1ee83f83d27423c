"""Targets for the python action tests; imported by worker processes from tests/."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Any


def add(a: int, b: int) -> int:
    return a + b


def greet(name: str, punctuation: str = "!") -> str:
    return f"hello {name}{punctuation}"


async def async_double(x: int) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"double": x * 2}


def chatty() -> str:
    print("from print")
    print("to stderr", file=sys.stderr)
    subprocess.run(["sh", "-c", "echo from a subprocess"], check=True)
    return "done"


def pid() -> int:
    return os.getpid()


def env_and_cwd() -> dict[str, str]:
    return {"cwd": os.getcwd(), "var": os.environ.get("SAMPLE_VAR", "")}


def block_forever() -> None:
    print("about to block", flush=True)
    while True:
        time.sleep(1)


def fail() -> None:
    try:
        raise KeyError("missing")
    except KeyError as exc:
        raise ValueError("the sample failed on purpose") from exc


def hard_exit() -> None:
    print("exiting hard", flush=True)
    os._exit(3)


async def nap(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "rested"


def counting_up():  # type: ignore[no-untyped-def]
    """A generator function by mistake: calling it runs none of its body."""
    yield 1


def exits(code: int | str | None) -> None:
    """A script's main() made a task: it ends with sys.exit(code)."""
    print("work done", flush=True)
    sys.exit(code)


async def exits_async(code: int | None) -> None:
    await asyncio.sleep(0)
    sys.exit(code)
