"""File helpers shared by every command: atomic writes, strict reads, provenance."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import tempfile
from collections.abc import Iterable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from hnas_edge import __version__
from hnas_edge.errors import HnasError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` so that ``path`` holds either the old or the new content, never a mix.

    The bytes go to a temporary file in the same directory, are flushed to disk, and the file is
    renamed over ``path`` (rename is atomic on POSIX within one file system).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _file_mode(path))
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _file_mode(path: Path) -> int:
    """Keep an existing file's mode; a new file gets the usual 0666 less the umask
    (mkstemp alone would leave it private, 0600)."""
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=False) + "\n")


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """Read a JSON file, turning every failure into one actionable line."""
    path = Path(path)
    if not path.is_file():
        raise HnasError(f"{what} not found: {path}; check the path")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise HnasError(f"{what} {path} is not UTF-8 text ({exc.reason}); re-create it") from None
    except OSError as exc:
        raise HnasError(f"{what} {path} cannot be read ({exc.strerror}); check it") from None
    return parse_json(text, f"{what} {path}")


def parse_json(text: str, what: str) -> Any:
    """JSON text, refused in one line when invalid or nested deeper than any file of ours is
    (:data:`~hnas_edge.checks.MAX_DEPTH`)."""
    from hnas_edge.checks import MAX_DEPTH, depth_exceeds

    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HnasError(f"{what} is not valid JSON ({exc}); re-create or fix it") from None
    except RecursionError:
        data = None
        deep = True
    else:
        deep = depth_exceeds(data)
    if deep:
        raise HnasError(
            f"{what} nests lists/objects deeper than {MAX_DEPTH} levels, which no file of "
            "hnas-edge does; re-create or fix it"
        )
    return data


def read_toml(path: str | Path, what: str = "TOML file") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise HnasError(f"{what} not found: {path}; check the path")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise HnasError(f"{what} {path} is not valid TOML ({exc}); fix its syntax") from None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    """Versions of the software that shapes results; recorded in every output file."""
    return {
        "hnas-edge": __version__,
        "python": platform.python_version(),
        "torch": _version("torch"),
        "onnx": _version("onnx"),
        "onnxruntime": _version("onnxruntime"),
        "numpy": _version("numpy"),
    }


def provenance(settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """What made an output file: when, where, with which versions, command and settings."""
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "versions": versions(),
        "settings": settings or {},
    }


def file_digest(paths: Iterable[str | Path]) -> str:
    """The sha256 (hex) of the files' contents, in the order given, read in 1 MiB blocks."""
    sha = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                sha.update(block)
    return sha.hexdigest()
