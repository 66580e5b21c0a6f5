"""What every command that writes a file or folder does before and while it writes.

The policy, in one place:

- an existing target is refused unless the command was told what to do with it: ``--force``
  (replace it) or ``--resume`` (continue it), whichever the command offers; an empty folder
  counts as new;
- a target that is itself a symbolic link is refused, always: hnas never writes through such
  a link or replaces it (give the real path; linked folders above the target are fine);
- before any work starts, the target must be writable: not a folder where a file is wanted (or
  the reverse), not under a file, not read-only, in a folder this process may write in;
- files are written atomically (:mod:`hnas_edge.io`), so a kill leaves the old content or the
  new, never a mix;
- a LUT is written by one process at a time: every LUT writer holds an advisory lock on
  ``OUT.lock`` (:func:`writer_lock`) from before it reads the LUT until its last write. A second
  writer is refused at once, in one line naming the holder; it does not wait (two profiles of one
  board would measure at the same time and skew each other's figures).

:func:`claim_output` applies the checks; :func:`lut_output` claims a LUT and holds its lock.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import stat
import sys
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from hnas_edge.errors import HnasError

try:
    import fcntl
except ModuleNotFoundError:  # Windows: no advisory locks, no LUT writing (writer_lock says so)
    fcntl = None  # type: ignore[assignment]

Kind = Literal["file", "folder"]
LOCK_SUFFIX = ".lock"


class OutputError(HnasError):
    """An output path that cannot or may not be written; nothing was done yet."""


class LockedError(HnasError):
    """Another process is writing the same LUT."""


def claim_output(
    path: str | Path,
    *,
    kind: Kind = "file",
    force: bool | None = None,
    resume: bool | None = None,
    flag: str | None = "--out",
    keep: Collection[str] = (),
) -> Path:
    """Check, before any work, that ``path`` may be written as a ``kind``; return it.

    ``force`` and ``resume`` are the command's flags of those names, None where the command has
    no such flag (the message then does not offer it). ``flag`` names the option that gave the
    path, for the messages (None: a positional argument). ``keep`` names entries of a folder that
    do not make it count as existing (e.g. the supernets a search trains into its own folder).
    Nothing is created or changed.
    """
    path = Path(path)
    if force and resume:
        raise OutputError(
            "pass --resume (continue what is there) or --force (replace it), not both"
        )
    elsewhere = f"choose another {flag}" if flag else "give another path"
    try:
        _check(path, kind, bool(force) or bool(resume), _offers(force, resume), elsewhere, keep)
    except OSError as exc:  # a name too long, a folder we may not even look into, ...
        reason = exc.strerror or str(exc)
        raise OutputError(f"cannot use {path} as output ({reason}); {elsewhere}") from None
    return path


def _check(
    path: Path, kind: Kind, accepted: bool, offers: str, elsewhere: str, keep: Collection[str]
) -> None:
    if path.is_symlink():
        raise OutputError(
            f"{path} is a symbolic link (to {os.readlink(path)}); hnas does not write through "
            "or over links: give the real path, or remove the link"
        )
    if path.exists():
        if kind == "file" and path.is_dir():
            raise OutputError(f"{path} is a folder; give the path of a file to write")
        if kind == "folder" and not path.is_dir():
            raise OutputError(f"{path} is a file, not a folder; {elsewhere}")
        if _holds_something(path, kind, keep) and not accepted:
            state = "already exists" if kind == "file" else "already exists and is not empty"
            how = f"{offers}, or {elsewhere}" if offers else elsewhere
            raise OutputError(f"{path} {state}; {how}")
        if not _writable(path):
            raise OutputError(f"{path} is read-only; make it writable (chmod u+w) or {elsewhere}")
    folder = _nearest_existing(path.parent if kind == "file" else path)
    if not folder.is_dir():
        raise OutputError(f"cannot write {path}: {folder} is a file, not a folder; {elsewhere}")
    if not _writable(folder):
        raise OutputError(
            f"cannot write {path}: the folder {folder} is read-only or not ours to write in; "
            f"{elsewhere}"
        )


def _offers(force: bool | None, resume: bool | None) -> str:
    """How to go past an existing target with the flags this command has ('' if none)."""
    if resume is not None and force is not None:
        return "pass --resume to continue it or --force to replace it"
    if resume is not None:
        return "pass --resume to continue it"
    if force is not None:
        return "pass --force to replace it"
    return ""


def _holds_something(path: Path, kind: Kind, keep: Collection[str]) -> bool:
    if kind == "file":
        return True
    return any(entry.name not in keep for entry in path.iterdir())


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path.cwd()


def _writable(path: Path) -> bool:
    """Whether this process may write ``path`` (a folder: create files in it). A file or folder
    without any write bit counts as read-only even for root, who could write it anyway."""
    mode = path.stat().st_mode
    need = os.W_OK | (os.X_OK if stat.S_ISDIR(mode) else 0)
    return bool(mode & 0o222) and os.access(path, need)


# --- the LUT writers' lock ------------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: written into the lock file, read back by a writer it refuses."""

    pid: int
    host: str
    since: str
    command: str

    @classmethod
    def this_process(cls) -> Holder:
        argv = [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv and sys.argv[0] else ["python"]
        return cls(
            pid=os.getpid(),
            host=platform.node() or socket.gethostname(),
            since=time.strftime("%Y-%m-%d %H:%M:%S"),
            command=" ".join(argv),
        )

    def describe(self) -> str:
        command = self.command if len(self.command) <= 120 else self.command[:117] + "..."
        return f"pid {self.pid} on {self.host}, since {self.since}: {command}"


def lock_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + LOCK_SUFFIX)


@contextmanager
def writer_lock(path: str | Path, hint: str = "") -> Iterator[Holder]:
    """Hold the advisory lock of ``path`` (``flock`` on ``PATH.lock``) while the block runs.

    Taken without waiting: if another process holds it, :class:`LockedError` names that process
    (and ``hint``: what to do instead). The kernel releases the lock when its holder exits, killed
    or not, so a stale ``PATH.lock`` left by a kill never blocks anyone; a clean exit removes it.
    Advisory: only hnas writers take it; readers need not (every write is atomic).
    """
    if fcntl is None:  # Windows
        raise HnasError("hnas writes LUTs only on POSIX systems (Linux, macOS)")
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(lock, Path(path), hint)
    holder = Holder.this_process()
    try:
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(asdict(holder)) + "\n").encode())
        yield holder
    finally:
        # unlink while still holding it: a writer that opened the old file finds, once it gets
        # the lock, that the name now leads elsewhere (or nowhere) and opens it again
        Path(lock).unlink(missing_ok=True)
        os.close(fd)


def _acquire(lock: Path, path: Path, hint: str) -> int:
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    while True:
        try:
            fd = os.open(lock, flags, 0o666)
        except OSError as exc:
            raise OutputError(
                f"cannot create the lock file {lock} ({exc.strerror}); remove it if it is a "
                "link or a folder, or choose another output"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            who = f" ({holder.describe()})" if holder else ""
            raise LockedError(
                f"{path} is being written by another hnas process{who}; wait for it to finish"
                f"{', ' + hint if hint else ''}"
            ) from None
        if _same_file(fd, lock):
            return fd
        os.close(fd)  # its holder removed it as we opened it: take the new one


def _same_file(fd: int, lock: Path) -> bool:
    try:
        now = os.stat(lock, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)


def _read_holder(fd: int) -> Holder | None:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode() or "null")
        return Holder(**data) if isinstance(data, dict) else None
    except (OSError, ValueError, TypeError):  # being written right now: name no one
        return None


@contextmanager
def lut_output(
    path: str | Path,
    *,
    force: bool | None = None,
    resume: bool | None = None,
    flag: str | None = "--out",
    hint: str = "",
) -> Iterator[Path]:
    """Claim ``path`` for a LUT (:func:`claim_output`) and hold its writers' lock while the block
    reads and writes it. The claim is checked again under the lock: another writer may have
    created the file between the first check and the lock."""
    claim_output(path, force=force, resume=resume, flag=flag)
    with writer_lock(path, hint):
        yield claim_output(path, force=force, resume=resume, flag=flag)
