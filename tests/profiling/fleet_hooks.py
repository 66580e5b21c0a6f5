"""Test-only instrumentation of the fleet's Ray workers; no product code knows about it.

A test driver installs it with ``ray.init(runtime_env={"worker_process_setup_hook":
"tests.profiling.fleet_hooks.install", "env_vars": {...}})``: Ray runs :func:`install` in every
worker process of that driver's job before its first task, and it wraps
:meth:`Bench.measure_part` there. Its env vars:

``HNAS_TEST_MEASURED``
    a file to which every finished measurement appends ``pid key start end`` (monotonic clock,
    one clock for every process of this machine);
``HNAS_TEST_DIE_ONCE``
    a marker file; the first measurement of any worker that finds it absent creates it (writing
    its key) and ends its worker process at once, as a crashing board would.
"""

from __future__ import annotations

import os
import time
from typing import Any

from hnas_edge.profiling.measure import Bench

MEASURED = "HNAS_TEST_MEASURED"
DIE_ONCE = "HNAS_TEST_DIE_ONCE"


def _claim(marker: str, key: str) -> bool:
    """Create ``marker`` if no worker has yet (atomically: exactly one worker dies)."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, key.encode())
    os.close(fd)
    return True


def _log(path: str, line: str) -> None:
    fd = os.open(path, os.O_CREAT | os.O_APPEND | os.O_WRONLY)
    os.write(fd, (line + "\n").encode())
    os.close(fd)


def install() -> None:
    measure = Bench.measure_part

    def instrumented(self: Bench, spec: Any, seed: int, batch: int = 1) -> dict[str, Any]:
        marker = os.environ.get(DIE_ONCE)
        if marker and _claim(marker, spec.key):
            os._exit(1)
        start = time.monotonic()
        entry = measure(self, spec, seed, batch)
        if os.environ.get(MEASURED):
            _log(os.environ[MEASURED], f"{os.getpid()} {spec.key} {start} {time.monotonic()}")
        return entry

    Bench.measure_part = instrumented  # type: ignore[method-assign]
