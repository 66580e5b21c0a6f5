"""Field checks for every file and flag hnas reads.

Each reader (LUT, device TOML, architecture, checkpoint, front.json, sidecar, .npz) checks its
input once, where it is read, with a :class:`Fields` that knows where the values come from. A bad
value gives one line naming the file, the field, the value and what is allowed, as an
:class:`~hnas_edge.errors.HnasError` (the CLI's exit code 2)::

    LUT cpu.json: calibration.latency.a = nan; allowed: a finite number > 0 (re-create it ...)

Hand-written rather than a schema library: our files are nested dicts with free-form parts
(provenance, settings, runtime descriptions) beside a few typed fields, and each check is a line.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hnas_edge.errors import HnasError

#: Deepest nesting of lists and objects any file of ours holds (a LUT entry's spec is 5 levels
#: deep; repeated `hnas lut merge` nests provenance 2 levels per merge). Deeper is refused before
#: any recursive code (json, copy, our walks) can run out of stack on it.
MAX_DEPTH = 64

_SHOWN = 60  # characters of a value shown in an error


def shown(value: Any) -> str:
    """``repr(value)``, cut short for a line of text."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def depth_exceeds(obj: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether lists/objects nest deeper than ``limit`` (iterative: no recursion on the input)."""
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if level > limit:
            return True
        stack.extend((child, level + 1) for child in children)
    return False


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def finite_number(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)


@dataclass(frozen=True)
class Fields:
    """Checks of the fields of one input. ``source`` names it (``"LUT cpu.json"``); ``fix`` says
    what to do about a bad field (appended in parentheses)."""

    source: str
    fix: str = ""
    error: type[HnasError] = HnasError

    def fail(self, field: str, value: Any, allowed: str) -> HnasError:
        return self.line(f"{field} = {shown(value)}; allowed: {allowed}")

    def missing(self, field: str, allowed: str) -> HnasError:
        return self.line(f"{field} is missing; give {allowed}")

    def line(self, text: str) -> HnasError:
        """``text`` about this input, with its source and fix."""
        fix = f" ({self.fix})" if self.fix else ""
        return self.error(f"{self.source}: {text}{fix}")

    # --- containers ---------------------------------------------------------------------------

    def obj(self, value: Any, field: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(field, value, "an object {...}")
        return value

    def optional_obj(self, value: Any, field: str) -> dict[str, Any]:
        """An object, or None/absent (read as an empty one)."""
        return {} if value is None else self.obj(value, field)

    def array(self, value: Any, field: str, min_len: int = 0) -> list[Any]:
        if not isinstance(value, list) or len(value) < min_len:
            what = "a list" if min_len == 0 else f"a list of at least {min_len} item(s)"
            raise self.fail(field, value, what)
        return value

    def get(self, data: Mapping[str, Any], key: str, field: str, allowed: str) -> Any:
        """``data[key]``, or a line saying ``field`` is missing."""
        if key not in data:
            raise self.missing(field, allowed)
        return data[key]

    def known(self, data: Mapping[str, Any], allowed: Iterable[str], field: str) -> None:
        allowed = tuple(allowed)
        unknown = [k for k in data if k not in allowed]
        if unknown:
            where = f"{field}.{unknown[0]}" if field else str(unknown[0])
            raise self.line(f"unknown field {where}; known: {', '.join(allowed)}")

    # --- scalars ------------------------------------------------------------------------------

    def number(
        self,
        value: Any,
        field: str,
        *,
        gt: float | None = None,
        ge: float | None = None,
        le: float | None = None,
    ) -> float:
        """A finite number (not a bool) within the bounds given."""
        allowed = "a finite number" + _bounds(gt, ge, le)
        if not finite_number(value):
            raise self.fail(field, value, allowed)
        if (
            (gt is not None and not value > gt)
            or (ge is not None and not value >= ge)
            or (le is not None and not value <= le)
        ):
            raise self.fail(field, value, allowed)
        return float(value)

    def optional_number(self, value: Any, field: str, **bounds: float) -> float | None:
        return None if value is None else self.number(value, field, **bounds)

    def integer(
        self, value: Any, field: str, *, ge: int | None = None, le: int | None = None
    ) -> int:
        allowed = "an integer" + _bounds(None, ge, le)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(field, value, allowed)
        if (ge is not None and value < ge) or (le is not None and value > le):
            raise self.fail(field, value, allowed)
        return value

    def flag(self, value: Any, field: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(field, value, "true or false")
        return value

    def text(self, value: Any, field: str) -> str:
        """A non-empty string."""
        if not isinstance(value, str) or not value.strip():
            raise self.fail(field, value, "a non-empty string")
        return value

    def optional_text(self, value: Any, field: str) -> str | None:
        return None if value is None else self.text(value, field)

    def name(self, value: Any, field: str) -> str:
        """A non-empty name that is safe as part of a file name: no path separators, not ``.``
        or ``..``, no control characters."""
        allowed = "a non-empty name without /, \\, control characters, '.' or '..'"
        if (
            not isinstance(value, str)
            or not value.strip()
            or value in (".", "..")
            or any(c in value for c in "/\\")
            or any(ord(c) < 32 for c in value)
        ):
            raise self.fail(field, value, allowed)
        return value

    def choice(self, value: Any, field: str, allowed: Iterable[Any]) -> Any:
        allowed = tuple(allowed)
        if isinstance(value, bool) or not _hashable(value) or value not in allowed:
            raise self.fail(field, value, "one of " + ", ".join(map(str, allowed)))
        return value

    def each(self, items: Mapping[str, Any], field: str, check: Callable[[Any, str], Any]) -> None:
        """``check(value, field.key)`` for every item of an object."""
        for key, value in items.items():
            check(value, f"{field}.{key}")


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _bounds(gt: float | None, ge: float | None, le: float | None) -> str:
    parts = [f"> {gt:g}" if gt is not None else "", f">= {ge:g}" if ge is not None else ""]
    parts.append(f"<= {le:g}" if le is not None else "")
    text = " and ".join(p for p in parts if p)
    return f" {text}" if text else ""


def differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``"field old → new"`` for every (dotted) field whose value differs, nested objects
    compared field by field; for a resume that must not mix inputs."""
    changed = []
    for key in dict.fromkeys([*old, *new]):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            changed += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            changed.append(f"{prefix}{key} {shown(a)} → {shown(b)}")
    return changed
