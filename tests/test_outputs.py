"""The output policy of every command that writes (hnas_edge/outputs.py), with real files and
real processes.

Every refusal is exit code 2, one line on stderr, no traceback, and leaves every file that was
there before exactly as it was (bytes, mode, links), with no lock or temporary file behind.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import fast_device, read_front

from hnas_edge.outputs import LockedError, claim_output, lock_path, writer_lock
from hnas_edge.profiling.lut import Lut


def hnas(*args: str, cwd: Path, **kwargs) -> subprocess.Popen:
    """The real console entry point, started as a user would, in ``cwd``."""
    return subprocess.Popen(
        [sys.executable, "-c", "from hnas_edge.cli import main; main()", *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        **kwargs,
    )


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    process = hnas(*args, cwd=cwd)
    out, err = process.communicate(timeout=300)
    return subprocess.CompletedProcess(args, process.returncode, out, err)


def small_lut(path: Path, key: str = "conv|x=1") -> Path:
    entries = {key: {"latency_ms": {"median": 0.1, "std": 0.001}}}
    device = {"name": "cpu", "runtime": "onnxruntime", "precision": "fp32"}
    Lut(device=device, entries=entries).save(path)
    return path


def snapshot(folder: Path) -> dict[str, tuple]:
    """Everything under ``folder``: each entry's kind, mode and content (a link: its target)."""
    seen = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            seen[str(path.relative_to(folder))] = ("link", os.readlink(path))
        elif stat.S_ISDIR(info.st_mode):
            seen[str(path.relative_to(folder))] = ("dir", stat.S_IMODE(info.st_mode))
        else:
            content = path.read_bytes()
            seen[str(path.relative_to(folder))] = ("file", stat.S_IMODE(info.st_mode), content)
    return seen


def refused(result: subprocess.CompletedProcess, says: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert says in result.stderr
    assert result.stdout.strip() == ""  # refused before any work: not even an empty bar


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A folder as a user's might look: LUTs, notes, a link, folders, read-only things."""
    small_lut(tmp_path / "a.json", "conv|x=1")
    small_lut(tmp_path / "b.json", "conv|x=2")
    (tmp_path / "notes.txt").write_text("my notes\n")
    (tmp_path / "link.json").symlink_to("a.json")
    (tmp_path / "dangling.json").symlink_to("nowhere.json")
    (tmp_path / "folder").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine\n")
    (tmp_path / "full-link").symlink_to("full")
    small_lut(tmp_path / "readonly.json").chmod(0o444)
    (tmp_path / "readonly-folder").mkdir(mode=0o555)
    (tmp_path / "fast.toml").write_text(fast_device())
    return tmp_path


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    says: str


MERGE = ("lut", "merge", "a.json", "b.json")
IMPORT = ("lut", "import", "harmonic-nas", "--device", "tx2")
PROFILE = ("profile", "--device", "fast.toml", "--limit", "1")
REFUSED = {
    # an existing target, without the flag that says what to do with it
    "merge over a text file": Case(
        (*MERGE, "-o", "notes.txt"), "notes.txt already exists; pass --force to replace it"
    ),
    "merge of a LUT with itself over a text file": Case(
        ("lut", "merge", "a.json", "a.json", "-o", "notes.txt"), "pass --force"
    ),
    "import over a LUT": Case((*IMPORT, "--out", "a.json"), "a.json already exists"),
    "profile over a LUT": Case(
        (*PROFILE, "--out", "a.json"),
        "a.json already exists; pass --resume to continue it or --force to replace it",
    ),
    "train into a folder that holds files": Case(
        ("train", "--out", "full"), "full already exists and is not empty; pass --resume"
    ),
    "search into a folder that holds files": Case(
        ("search", "--lut", "a.json", "--out", "full"), "full already exists and is not empty"
    ),
    "profile told both to resume and to start over": Case(
        (*PROFILE, "--out", "a.json", "--resume", "--force"), "not both"
    ),
    # a symbolic link: never written through or replaced, --force or not
    "merge onto a link": Case((*MERGE, "-o", "link.json", "--force"), "is a symbolic link"),
    "merge onto a dangling link": Case((*MERGE, "-o", "dangling.json"), "is a symbolic link"),
    "profile resuming a link": Case(
        (*PROFILE, "--out", "link.json", "--resume"), "link.json is a symbolic link (to a.json)"
    ),
    "validate of a link": Case(
        ("lut", "validate", "link.json", "--device", "fast.toml"), "give the real path"
    ),
    "train resuming into a linked folder": Case(
        ("train", "--out", "full-link", "--resume"), "full-link is a symbolic link"
    ),
    # read-only
    "merge over a read-only LUT": Case(
        (*MERGE, "-o", "readonly.json", "--force"), "readonly.json is read-only; make it writable"
    ),
    "validate of a read-only LUT": Case(
        ("lut", "validate", "readonly.json", "--device", "fast.toml"), "is read-only"
    ),
    "profile resuming a read-only LUT": Case(
        (*PROFILE, "--out", "readonly.json", "--resume"), "is read-only"
    ),
    "merge into a read-only folder": Case(
        (*MERGE, "-o", "readonly-folder/ab.json"), "the folder readonly-folder is read-only"
    ),
    "train into a read-only folder": Case(
        ("train", "--out", "readonly-folder/sn"), "the folder readonly-folder is read-only"
    ),
    # a folder where a file goes, a file where a folder goes
    "merge onto a folder": Case((*MERGE, "-o", "folder"), "folder is a folder; give the path"),
    "profile onto a folder": Case((*PROFILE, "--out", "folder"), "is a folder"),
    "search into a file": Case(
        ("search", "--lut", "a.json", "--out", "notes.txt"), "notes.txt is a file, not a folder"
    ),
    "quickstart into a file": Case(("quickstart", "--out", "notes.txt"), "is a file, not a folder"),
    # under a file
    "merge under a file": Case(
        (*MERGE, "-o", "notes.txt/ab.json"), "notes.txt is a file, not a folder"
    ),
    "profile under a file": Case((*PROFILE, "--out", "notes.txt/cpu.json"), "notes.txt is a file"),
    "train under a file": Case(("train", "--out", "notes.txt/sn"), "notes.txt is a file"),
}


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED.keys())
def test_a_bad_output_is_refused_in_one_line_and_nothing_changes(workspace, case):
    before = snapshot(workspace)
    refused(run(*case.args, cwd=workspace), case.says)
    assert snapshot(workspace) == before


def test_force_replaces_an_existing_file_atomically_and_leaves_no_lock(workspace):
    result = run(*MERGE, "-o", "notes.txt", "--force", cwd=workspace)
    assert result.returncode == 0, result.stderr
    assert set(Lut.load(workspace / "notes.txt").entries) == {"conv|x=1", "conv|x=2"}
    assert not lock_path(workspace / "notes.txt").exists()
    assert not list(workspace.glob(".notes.txt.*"))  # no temporary file either


def test_profile_force_starts_over(workspace):
    result = run(*PROFILE, "--out", "a.json", "--force", cwd=workspace)
    assert result.returncode == 0, result.stderr
    lut = Lut.load(workspace / "a.json")
    assert len(lut) == 1 and "conv|x=1" not in lut  # the old entry went with the old file


# --- export: the artifact and its sidecar --------------------------------------------------


def test_export_refuses_an_existing_file_or_sidecar_and_force_replaces_both(finished, tmp_path):
    import onnx

    model = finished / read_front(finished)["models"][0]["id"]
    small_lut(tmp_path / "existing.json")
    before = snapshot(tmp_path)
    result = run("export", model, "-o", "existing.json", cwd=tmp_path)
    refused(
        result, "existing.json already exists; pass --force to replace it, or choose another -o"
    )
    assert snapshot(tmp_path) == before
    (tmp_path / "m.onnx.json").write_text("{}\n")  # a sidecar alone is somebody's too
    before = snapshot(tmp_path)
    refused(run("export", model, "-o", "m.onnx", cwd=tmp_path), "m.onnx.json already exists")
    assert snapshot(tmp_path) == before
    result = run("export", model, "-o", "existing.json", "--force", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    onnx.checker.check_model(onnx.load_from_string((tmp_path / "existing.json").read_bytes()))
    assert json.loads((tmp_path / "existing.json.json").read_text())["format"] == "onnx"


# --- the LUT writers' lock ------------------------------------------------------------------

HOLDER = """
import sys
from hnas_edge.outputs import writer_lock
with writer_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.readline()
"""


def hold_lock(path: Path) -> subprocess.Popen:
    """Another process holding ``path``'s writers' lock until its stdin gets a line."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_in_one_process_a_second_lock_of_the_same_file_is_refused(tmp_path, monkeypatch):
    target = tmp_path / "lut.json"
    monkeypatch.chdir(tmp_path)
    with writer_lock(target):  # noqa: SIM117
        with pytest.raises(LockedError, match="being written by another hnas process"):
            with writer_lock("lut.json"):  # another spelling of the same file
                pass
    with writer_lock(target):  # released on leaving the block
        pass
    assert not lock_path(target).exists()


def test_a_writer_is_refused_while_another_process_holds_the_lock_then_goes_ahead(workspace):
    holder = hold_lock(workspace / "ab.json")
    try:
        result = run(*MERGE, "-o", "ab.json", cwd=workspace)
        refused(result, f"ab.json is being written by another hnas process (pid {holder.pid}")
        assert not (workspace / "ab.json").exists()
    finally:
        holder.communicate("\n", timeout=30)
    assert run(*MERGE, "-o", "ab.json", cwd=workspace).returncode == 0
    assert not lock_path(workspace / "ab.json").exists()


def test_a_lock_left_by_a_killed_writer_blocks_no_one(workspace):
    holder = hold_lock(workspace / "ab.json")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    holder.stdin.close()
    holder.stdout.close()
    assert lock_path(workspace / "ab.json").exists()  # the file stays; the kernel freed the lock
    result = run(*MERGE, "-o", "ab.json", cwd=workspace)
    assert result.returncode == 0, result.stderr
    assert not lock_path(workspace / "ab.json").exists()


def wait_for_entries(path: Path, n: int, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and len(json.loads(path.read_text())["entries"]) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} did not reach {n} entries in {timeout_s:.0f} s")


def test_two_profiles_of_one_lut_the_second_is_refused_and_nothing_is_lost(tmp_path):
    """Two shards started on one board into one --out: the second (and a validate) is refused
    at once while the first measures; the first finishes every key of its shard; the second,
    rerun afterwards, adds its keys to the same file."""
    (tmp_path / "slow.toml").write_text(fast_device(min_time_s=0.5))
    device, out = "slow.toml", tmp_path / "same.json"
    first = hnas(
        "profile", "--device", device, "--shard", "1/2", "--out", "same.json", cwd=tmp_path
    )
    try:
        wait_for_entries(out, 1)
        second = run(
            "profile", "--device", device, "--shard", "2/2", "--out", "same.json", "--resume",
            cwd=tmp_path,
        )  # fmt: skip
        refused(second, f"same.json is being written by another hnas process (pid {first.pid}")
        assert "--shard 1/2" in second.stderr and "hnas lut merge" in second.stderr
        validate = run("lut", "validate", "same.json", "--device", device, cwd=tmp_path)
        refused(validate, "is being written by another hnas process")
        assert first.poll() is None, "the first profile finished before the check; slow it down"
        _, err = first.communicate(timeout=300)
        assert first.returncode == 0, err
    finally:
        if first.poll() is None:
            first.kill()
    mine = Lut.load(out).entries
    assert len(mine) == 29  # shard 1/2 of the 57 avmnist keys, none lost
    assert not lock_path(out).exists()
    again = run(
        "profile", "--device", device, "--shard", "2/2", "--out", "same.json", "--resume",
        "--limit", "2", cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    both = Lut.load(out).entries
    assert len(both) == 31 and all(both[key] == entry for key, entry in mine.items())


# --- the policy as a function ---------------------------------------------------------------


def test_an_empty_folder_counts_as_new_and_a_kept_entry_does_not_count(tmp_path):
    (tmp_path / "empty").mkdir()
    assert claim_output(tmp_path / "empty", kind="folder") == tmp_path / "empty"
    (tmp_path / "search" / "supernets").mkdir(parents=True)
    claim_output(tmp_path / "search", kind="folder", resume=False, keep=("supernets",))


def test_a_path_that_does_not_exist_yet_is_claimed_without_creating_anything(tmp_path):
    claim_output(tmp_path / "new" / "deeper" / "lut.json", force=False)
    assert list(tmp_path.iterdir()) == []
