"""`hnas profile --ray-address`: a fleet of device slots measures the keys of one profile.

The session's local Ray cluster offers ``device:cpu: 2``: two slots of the ``cpu`` device, as two
boards would. Tests that look inside the workers drive the fleet from this process and instrument
the workers through their job's runtime_env (tests/profiling/fleet_hooks.py), never through
product code.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest
import tomllib
from fleet_hooks import DIE_ONCE, MEASURED
from test_profiler import FAST_DEVICE, hnas, run, space_keys, wait_for_entries

from hnas_edge.errors import HnasError
from hnas_edge.profiling import measure
from hnas_edge.profiling.device import DeviceProfile
from hnas_edge.profiling.energy import EnergyMeasurer
from hnas_edge.profiling.fleet import FleetSettings, profile_fleet
from hnas_edge.profiling.lut import Lut
from hnas_edge.profiling.profiler import ProfileRequest, profile

ray = pytest.importorskip("ray")
REPO = Path(__file__).resolve().parents[2]  # workers import the hooks as tests.profiling.…


@pytest.fixture
def device(tmp_path) -> str:
    path = tmp_path / "fast.toml"
    path.write_text(FAST_DEVICE)
    return str(path)


@pytest.fixture
def instrumented(ray_address):
    """Join the cluster from this process, the workers of this job instrumented with the given
    fleet_hooks env vars; leave it afterwards."""

    def join(**env_vars: str) -> None:
        ray.init(
            address=ray_address,
            runtime_env={
                "worker_process_setup_hook": "tests.profiling.fleet_hooks.install",
                "env_vars": {
                    **env_vars,
                    "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
                },
            },
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )

    yield join
    ray.shutdown()


def request(out: Path, limit: int | None = None, resume: bool = False) -> ProfileRequest:
    device = DeviceProfile.from_dict(tomllib.loads(FAST_DEVICE), "fast")
    return ProfileRequest(device=device, space="avmnist", out=out, resume=resume, limit=limit)


def measured(log: Path) -> list[tuple[int, str, float, float]]:
    rows = [line.split() for line in log.read_text().splitlines()]
    return [(int(pid), key, float(start), float(end)) for pid, key, start, end in rows]


def most_at_once(rows: list[tuple[int, str, float, float]]) -> int:
    """The largest number of measurements in progress at one moment."""
    events = sorted([(s, 1) for *_, s, _ in rows] + [(e, -1) for *_, e in rows])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_fleet_measures_the_keys_of_one_process_once_each(
    tmp_path, ray_address, instrumented, monkeypatch, one_thread
):
    single = profile(request(tmp_path / "single.json", limit=16))
    log = tmp_path / "measured.log"
    instrumented(**{MEASURED: str(log)})

    def no_runtime_here(*args, **kwargs):
        raise AssertionError("the driver built a runtime or a meter")

    monkeypatch.setattr(measure, "get_runtime", no_runtime_here)
    monkeypatch.setattr(EnergyMeasurer, "for_device", no_runtime_here)
    finished: list[str] = []
    fleet = profile_fleet(
        request(tmp_path / "fleet.json", limit=16),
        FleetSettings(ray_address),
        lambda done, total, spec: finished.append(spec.key) if done else None,
    )

    assert set(fleet.entries) == set(single.entries) and len(fleet) == 16
    assert sorted(finished) == sorted(fleet.entries)  # one task result per key
    rows = measured(log)
    assert sorted(key for _, key, *_ in rows) == sorted(fleet.entries)  # each measured once
    # never more at once than the slots (whether both were busy depends on how fast the second
    # worker starts on a loaded machine, so it is not asserted)
    assert 1 <= most_at_once(rows) <= 2
    saved = Lut.load(tmp_path / "fleet.json")
    nodes = saved.device["nodes"]
    assert len(nodes) == 1  # one machine in this cluster
    for entry in saved.entries.values():
        node = entry["origin"]["node"]
        assert entry["origin"]["kind"] == "measured"
        assert node["id"] in nodes and node["hostname"] == socket.gethostname()
    (info,) = nodes.values()
    assert info["runtime_info"]["name"] == "onnxruntime" and info["meter"] == "estimate"
    assert "runtime_info" not in saved.device  # the driver has no runtime to describe
    shown = run("lut", "show", str(tmp_path / "fleet.json")).stdout
    assert "meter estimate" in shown and f"measured on: {socket.gethostname()}: 16" in shown


def test_a_killed_driver_resumes_and_loses_nothing(tmp_path, device, ray_address):
    out = tmp_path / "lut.json"
    fleet = ("--device", device, "--out", str(out), "--ray-address", ray_address)
    process = hnas("profile", *fleet)
    wait_for_entries(out, 5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = Lut.load(out)
    assert 5 <= len(partial) < len(space_keys())
    resumed = run("profile", *fleet, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    final = Lut.load(out)
    assert set(final.entries) == space_keys()
    for key, entry in partial.entries.items():
        assert final.entries[key] == entry


def test_no_board_of_the_device_is_one_fast_line(tmp_path, ray_address):
    agx = tmp_path / "agx.toml"
    agx.write_text(FAST_DEVICE.replace('name = "cpu"', 'name = "agx"'))
    fleet = ("--device", str(agx), "--out", str(tmp_path / "agx.json"))
    process = hnas("profile", *fleet, "--ray-address", ray_address)
    _, err = process.communicate(timeout=60)  # waits for no slot that will never come
    assert process.returncode == 2
    assert len(err.strip().splitlines()) == 1
    assert "no node of the Ray cluster" in err and "offers device:agx" in err
    assert f"""ray start --address {ray_address} --resources '{{"device:agx": 1}}'""" in err
    assert not (tmp_path / "agx.json").exists()


def test_shard_with_a_fleet_is_refused_in_one_line(tmp_path, device):
    result = run("profile", "--device", device, "--shard", "1/2", "--ray-address", "x:1")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: --shard 1/2 with --ray-address")


def test_a_task_whose_worker_dies_is_retried(tmp_path, ray_address, instrumented):
    marker = tmp_path / "died"
    instrumented(**{DIE_ONCE: str(marker)})
    lut = profile_fleet(request(tmp_path / "lut.json", limit=6), FleetSettings(ray_address))
    assert marker.exists()  # a worker died measuring this key ...
    assert marker.read_text() in lut.entries  # ... and its retry measured it
    assert len(lut) == 6


def test_a_task_that_fails_after_its_retries_is_reported_and_resumable(
    tmp_path, ray_address, instrumented
):
    marker, out = tmp_path / "died", tmp_path / "lut.json"
    instrumented(**{DIE_ONCE: str(marker)})
    settings = FleetSettings(ray_address, max_retries=0)
    with pytest.raises(HnasError) as failed:
        profile_fleet(request(out, limit=6), settings)
    message = str(failed.value)
    assert message.startswith("1 part(s) failed on the fleet: " + marker.read_text())
    assert "keeps the 5 entries measured; rerun with --resume" in message
    first_six = set(Lut.load(out).entries) | {marker.read_text()}
    assert len(first_six) == 6  # the failed key is the one missing
    lut = profile_fleet(request(out, limit=1, resume=True), settings)  # the first key missing
    assert set(lut.entries) == first_six
