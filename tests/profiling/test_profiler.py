"""`hnas profile`: every key of a space measured, checkpointed, resumable, shardable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import fast_device

from hnas_edge.errors import ConfigError
from hnas_edge.io import tomllib
from hnas_edge.profiling.device import DeviceProfile
from hnas_edge.profiling.lut import Lut, check_target, merge
from hnas_edge.profiling.profiler import Shard
from hnas_edge.space.presets import get_preset

FAST_DEVICE = fast_device()


@pytest.fixture
def device(tmp_path):
    path = tmp_path / "fast.toml"
    path.write_text(FAST_DEVICE)
    return str(path)


@pytest.fixture
def slow_device(tmp_path):
    """A profile that lasts ~10 s, so that a signal sent after its first entries lands mid-run
    even on a loaded machine."""
    path = tmp_path / "slow.toml"
    path.write_text(fast_device(min_time_s=0.2))
    return str(path)


def hnas(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "from hnas_edge.cli import main; main()", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        **kwargs,
    )


def run(*args: str) -> subprocess.CompletedProcess:
    process = hnas(*args)
    out, err = process.communicate(timeout=300)
    return subprocess.CompletedProcess(args, process.returncode, out, err)


def wait_for_entries(out, n: int, timeout_s: float = 180) -> None:
    """Until a profile being written to ``out`` holds ``n`` entries (it is saved atomically)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if out.exists() and len(json.loads(out.read_text())["entries"]) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{out} did not reach {n} entries in {timeout_s:.0f} s")


def space_keys() -> set[str]:
    return {spec.key for spec in get_preset("avmnist").all_specs()}


def test_shards_split_the_sorted_keys_without_overlap():
    specs = get_preset("avmnist").all_specs()
    parts = [Shard(i, 3).select(specs) for i in (1, 2, 3)]
    assert sum(len(p) for p in parts) == len(specs)
    assert set().union(*({s.key for s in p} for p in parts)) == space_keys()


def test_two_shards_merged_equal_one_unsharded_run(tmp_path, device):
    whole, first, second = (tmp_path / n for n in ("whole.json", "s1.json", "s2.json"))
    assert run("profile", "--device", device, "--out", str(whole)).returncode == 0
    assert run("profile", "--device", device, "--shard", "1/2", "--out", str(first)).returncode == 0
    assert (
        run("profile", "--device", device, "--shard", "2/2", "--out", str(second)).returncode == 0
    )
    merged, both = merge(Lut.load(first), Lut.load(second))
    assert both == []
    assert set(merged.entries) == set(Lut.load(whole).entries) == space_keys()
    entry = Lut.load(whole).entries[next(iter(space_keys()))]
    assert entry["origin"] == {"kind": "measured"}
    assert entry["energy_mj"]["estimate"] is True  # no meter: labelled an estimate
    assert entry["dropped_s"] >= 0  # what the quiet-machine gate dropped is on record
    assert Lut.load(whole).settings["quiet_tolerance"] == 0.15
    assert run("lut", "check", str(whole), "--space", "avmnist").returncode == 0


def test_killed_mid_run_then_resumed_loses_and_repeats_nothing(tmp_path, slow_device):
    out = tmp_path / "lut.json"
    process = hnas("profile", "--device", slow_device, "--out", str(out))
    wait_for_entries(out, 5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = Lut.load(out)  # valid JSON with valid entries, even right after SIGKILL
    assert 5 <= len(partial) < len(space_keys())
    refused = run("profile", "--device", slow_device, "--out", str(out))
    assert refused.returncode == 2 and "pass --resume" in refused.stderr
    resumed = run("profile", "--device", slow_device, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    final = Lut.load(out)
    assert set(final.entries) == space_keys()
    for key, entry in partial.entries.items():
        assert final.entries[key] == entry  # what was measured before the kill is kept as is


def default_ctrl_c() -> None:
    """In the child: SIGINT unblocked and at its default, whatever the test process inherited
    or set (a blocked or ignored signal stays so across exec, and Python then never raises
    KeyboardInterrupt)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_says_how_to_go_on_and_keeps_what_was_measured(tmp_path, slow_device):
    out = tmp_path / "lut.json"
    process = hnas("profile", "--device", slow_device, "--out", str(out), preexec_fn=default_ctrl_c)
    wait_for_entries(out, 1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "rerun with --resume" in err and "Traceback" not in err
    assert Lut.load(out).entries


def test_resume_refuses_a_lut_of_another_device(tmp_path, device):
    out = tmp_path / "lut.json"
    Lut(device={"name": "agx", "runtime": "tensorrt", "precision": "fp16"}).save(out)
    result = run("profile", "--device", device, "--out", str(out), "--resume")
    assert result.returncode == 2
    assert "resume it with the same --device" in result.stderr


def test_a_bad_shard_is_refused_in_one_line(device, tmp_path):
    result = run("profile", "--device", device, "--shard", "3/2", "--out", str(tmp_path / "x"))
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: --shard 3/2")


def test_validate_measures_whole_networks_and_stores_the_calibration(tmp_path, device):
    out = tmp_path / "lut.json"
    assert run("profile", "--device", device, "--out", str(out)).returncode == 0
    result = run("lut", "validate", str(out), "--device", device, "--samples", "8")
    assert result.returncode == 0, result.stderr
    assert "8 networks measured end to end" in result.stdout
    lut = Lut.load(out)
    assert lut.calibration["latency"].fitted_on == 4
    assert lut.extra["validation"]["n"] == 8
    assert "held_out_after" in lut.extra["validation"]["latency"]


def test_validate_times_whole_networks_as_modules_on_a_module_runtime(tmp_path):
    """The gpu profile's runtime (torch) times modules, not ONNX files: validate hands it the
    network itself, as the profiler does its parts."""
    device = tmp_path / "torch.toml"
    device.write_text(FAST_DEVICE.replace('runtime = "onnxruntime"', 'runtime = "torch"'))
    out = tmp_path / "lut.json"
    assert run("profile", "--device", str(device), "--out", str(out)).returncode == 0
    result = run("lut", "validate", str(out), "--device", str(device), "--samples", "8")
    assert result.returncode == 0, result.stderr
    assert Lut.load(out).extra["validation"]["n"] == 8


def test_validate_refuses_an_incomplete_lut(tmp_path, device):
    out = tmp_path / "lut.json"
    assert run("profile", "--device", device, "--out", str(out), "--limit", "2").returncode == 0
    result = run("lut", "validate", str(out), "--device", device, "--samples", "8")
    assert result.returncode == 2
    assert "LUT lacks 55 key(s) needed for space avmnist" in result.stderr


def complete_lut(path, **device) -> bytes:
    """Every avmnist key priced, its header the fast device's with ``device`` changed (a
    ``profile`` of None records none); returns the file's bytes."""
    profile = DeviceProfile.from_dict(tomllib.loads(FAST_DEVICE), "fast").to_dict()
    header = {"name": "cpu", "runtime": "onnxruntime", "precision": "fp32", "profile": profile}
    header.update(device)
    if header["profile"] is None:
        del header["profile"]
    entries = {key: {"latency_ms": {"median": 0.1}} for key in space_keys()}
    Lut(device=header, settings={"batch": 1}, entries=entries).save(path)
    return path.read_bytes()


def test_validate_refuses_a_lut_profiled_at_another_precision_in_one_line(tmp_path, device):
    """A calibration measured in fp32 must not be written into an fp16 LUT."""
    out = tmp_path / "fp16.json"
    before = complete_lut(out, precision="fp16")
    result = run("lut", "validate", str(out), "--device", device, "--samples", "8")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert (
        "was profiled for ('cpu', 'onnxruntime', 'fp16'), not ('cpu', 'onnxruntime', 'fp32'); "
        "validate it with the same --device"
    ) in result.stderr
    assert out.read_bytes() == before


def test_validate_refuses_a_lut_made_with_other_device_settings(tmp_path, device):
    out = tmp_path / "two-threads.json"
    profile = DeviceProfile.from_dict(tomllib.loads(FAST_DEVICE), "fast").to_dict()
    before = complete_lut(out, profile={**profile, "threads": 2})
    result = run("lut", "validate", str(out), "--device", device, "--samples", "8")
    assert result.returncode == 2
    assert "was profiled with other device settings (threads 2 → 1)" in result.stderr
    assert "validate it with the device file it was made with" in result.stderr
    assert out.read_bytes() == before


def test_one_target_check_for_resume_and_validate(tmp_path):
    """Name, runtime, precision, batch and settings, as a resume and a validation see them: a LUT
    that records no device profile (made before profiles were recorded, or by hand) may be
    calibrated, but takes no new entries."""
    fast = DeviceProfile.from_dict(tomllib.loads(FAST_DEVICE), "fast")
    complete_lut(tmp_path / "same.json")
    same = Lut.load(tmp_path / "same.json")
    check_target(same, "same.json", fast, redo="resume it", batch=1)
    with pytest.raises(ConfigError, match="was profiled at batch 1, not --batch 4; resume it"):
        check_target(same, "same.json", fast, redo="resume it", batch=4)
    complete_lut(tmp_path / "bare.json", profile=None)
    bare = Lut.load(tmp_path / "bare.json")
    check_target(bare, "bare.json", fast, redo="validate it", adds_entries=False)
    with pytest.raises(ConfigError, match="other device settings"):
        check_target(bare, "bare.json", fast, redo="resume it", batch=1)
