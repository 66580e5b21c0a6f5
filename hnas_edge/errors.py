"""Errors a user can cause.

Every such error carries one line that names the problem and how to fix it. The CLI prints that
line and exits with code 2, without a traceback; library callers catch :class:`HnasError`.
"""

from __future__ import annotations


class HnasError(Exception):
    """A problem the user can fix: bad input, a missing file or library, an unknown name."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(HnasError):
    """An architecture config or setting outside its allowed values."""


class MissingLibraryError(HnasError):
    """An optional library (TensorRT, jtop, NVML, ...) is not installed or not usable here."""

    def __init__(self, library: str, install_hint: str, purpose: str = "") -> None:
        what = f" (needed for {purpose})" if purpose else ""
        super().__init__(f"{library} is not available{what}; {install_hint}")
