"""Stage 2 on Ray (`hnas search --executor ray`), on a local 2-CPU Ray cluster started like a
user's (tests/conftest.py): the same front as one process, backbone features shared through the
object store, and the failures a cluster has: a worker that dies, a driver that dies."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
from conftest import read_front, tiny
from conftest import run_search as run

from hnas_edge.search import engine
from hnas_edge.search.context import SearchInputs, pack_inputs
from hnas_edge.search.evaluate import (
    FusionJob,
    fuse_candidate,
    open_packed_worker,
    open_worker,
    run_fusion_job,
    score_backbone,
)
from hnas_edge.search.evolution import random_individual
from hnas_edge.search.executor import RayOptions

pytestmark = pytest.mark.usefixtures("one_thread")


def front_of(out):
    return [(m["id"], m["val_metric"], m["latency_ms"]) for m in read_front(out)["models"]]


def fused_records(out):
    state = json.loads((out / "state.json").read_text())
    return {k: r for k, r in state["records"].items() if r["fusion"]}


def test_ray_tasks_find_the_same_front_and_put_each_backbone_in_the_store_once(
    supernets, lut, finished, ray_address, tmp_path
):
    result = run(supernets, lut, tmp_path / "ray", tiny(), ray=RayOptions(address=ray_address))
    assert front_of(tmp_path / "ray") == front_of(finished)
    ran_on = result["executor"]
    fused = fused_records(tmp_path / "ray")
    assert ran_on["kind"] == "ray" and ran_on["tasks"] == len(fused)
    backbones = {(m, json.dumps(c, sort_keys=True)) for r in fused.values()
                 for m, c in r["individual"]["backbones"].items()}  # fmt: skip
    assert ran_on["shared_objects_put"] == len(backbones)  # once each, however many share it
    assert ran_on["shared_bytes_put"] > 0


def die_the_first_time(marker: str, worker, job, shared=None):
    """Runs in a Ray worker: the first call kills its own worker process (as an OOM kill or a
    crash would), every later call does the real work."""
    if not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return run_fusion_job(worker, job, shared)


def test_a_task_whose_worker_dies_is_retried_and_the_search_completes(
    supernets, lut, finished, ray_address, tmp_path, monkeypatch
):
    import ray

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import us
    marker = tmp_path / "died"
    monkeypatch.setattr(engine, "run_fusion_job", partial(die_the_first_time, str(marker)))
    run(supernets, lut, tmp_path / "ray", tiny(), ray=RayOptions(address=ray_address))
    assert marker.exists()  # a worker did die
    assert front_of(tmp_path / "ray") == front_of(finished)


DRIVER = """
import sys
from pathlib import Path
from conftest import run_search, tiny
from hnas_edge.search.executor import RayOptions
supernets, lut, out, address = sys.argv[1:]
run_search(Path(supernets), Path(lut), Path(out), tiny(),
           ray=RayOptions(address=address))
"""


def test_a_driver_killed_mid_generation_resumes_without_redoing_finished_candidates(
    supernets, lut, finished, ray_address, tmp_path
):
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    args = [str(supernets), str(lut), str(out), ray_address]
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, *args], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and driver.poll() is None:
        if (out / "state.json").exists() and fused_records(out):
            break
        time.sleep(0.2)
    assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    before = fused_records(out)
    assert before and not (out / "front.json").exists()
    weights = {k: (out / "candidates" / f"{k}.pt").stat().st_mtime_ns for k in before}

    run(supernets, lut, out, tiny(), resume=True, ray=RayOptions(address=ray_address))
    after = fused_records(out)
    for key, record in before.items():
        assert after[key] == record  # kept as it was, not fused again
        assert (out / "candidates" / f"{key}.pt").stat().st_mtime_ns == weights[key]
    assert front_of(out) == front_of(finished)


def test_stage_2_on_shared_backbones_equals_stage_2_computing_its_own(supernets, lut, tmp_path):
    """A worker given the driver's backbones and features uses them as they are, and a
    candidate's result does not depend on where (or whether earlier) they were computed."""
    inputs = SearchInputs(supernets, "avdigits", None, lut, tiny(), tmp_path)
    driver, worker = open_worker(inputs), open_worker(inputs)
    individual = random_individual(driver.context.preset, random.Random(0))
    job = FusionJob(individual, "x", 0, 0)
    shared = {name: compute() for name, compute in driver.shares(job).items()}
    assert len(shared) == len(driver.context.preset.modalities)
    context, cache = worker.context, worker.cache
    cache.adopt(context.device, shared)
    for value in shared.values():
        modality, config = value.key.modality, value.key.config
        assert cache.backbone(context, modality, config) is value.module
        train = cache.backbone_features(context, modality, config, "train")
        assert train is value.features["train"]
    on_shared = fuse_candidate(context, cache, job).result
    alone = open_worker(inputs)
    on_its_own = fuse_candidate(alone.context, alone.cache, job).result
    for field in ("architecture", "val_metric", "cost"):
        assert getattr(on_shared, field) == getattr(on_its_own, field)


def test_workers_on_other_machines_get_the_supernets_and_lut_with_their_context(
    supernets, lut, tmp_path
):
    inputs = SearchInputs(supernets, "avdigits", None, lut, tiny(), tmp_path)
    files = pack_inputs(inputs)
    here = open_worker(inputs).context
    modalities = here.preset.modalities
    assert set(files) == {"lut.json", "supernets/train.json"} | {
        f"supernets/{m}/supernet.pt" for m in modalities
    }
    there = open_packed_worker(inputs, files).context
    assert supernets not in there.inputs.supernets.parents and there.inputs.lut != lut
    config = there.fixed_config(modalities[0])
    assert score_backbone(there, modalities[0], config) == score_backbone(
        here, modalities[0], config
    )
