"""Shared fixtures: a tiny finished search (tiny supernets, a LUT priced from MACs), so that the
search, export and deploy tests read one real result instead of each making their own."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from hnas_edge.profiling.lut import Lut
from hnas_edge.search.config import SearchConfig
from hnas_edge.search.context import SearchInputs
from hnas_edge.search.darts import DartsConfig
from hnas_edge.search.engine import search
from hnas_edge.search.evolution import EvolutionConfig
from hnas_edge.search.results import write_results
from hnas_edge.space.presets import get_preset
from hnas_edge.train.config import TrainConfig
from hnas_edge.train.loop import train

PRESET = get_preset("avmnist")

# Ray reads its authentication mode when it is imported: the test cluster's token is set first.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))


# --- a local Ray cluster, started as a user starts one: `ray start --head`, token auth on, no
# dashboard. Two CPUs and the custom resource ``device:cpu: 2`` stand for two boards of a fleet.


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def ray_cluster(cpus: int = 2, resources: str = '{"device:cpu": 2}') -> Iterator[str]:
    """Yield the address of a new head node; drivers join it with the session's token.

    The head runs in the foreground (``--block``) in its own process group, which is ended at
    the end: ``ray stop`` would also stop any other Ray instance on the machine.
    """
    beside = Path(sys.executable).with_name("ray")  # this interpreter's, activated or not
    ray = str(beside) if beside.exists() else shutil.which("ray")
    if ray is None:
        raise RuntimeError("the ray CLI is not installed (pip install -e '.[dev]')")
    port = _free_port()
    # its own temp dir: the machine's /tmp/ray/ray_current_cluster is not pointed at this head,
    # so no later `ray.init()` on this machine tries to join it once it is gone
    temp = tempfile.mkdtemp(prefix="hnas-ray-", dir="/tmp")  # short: Ray's sockets live there
    head = subprocess.Popen(
        [ray, "start", "--head", "--block", f"--port={port}", f"--num-cpus={cpus}",
         "--num-gpus=0", f"--resources={resources}", "--include-dashboard=false",
         "--disable-usage-stats", f"--temp-dir={temp}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    try:
        _wait_for_head(ray, address, head)
        yield address
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def _wait_for_head(ray: str, address: str, head: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"`ray start --head` exited with {head.returncode}")
        status = subprocess.run([ray, "status", f"--address={address}"], capture_output=True)
        if status.returncode == 0:
            return
        time.sleep(0.5)
    raise RuntimeError(f"no Ray head answered at {address} within {timeout_s:.0f} s")


@pytest.fixture
def one_thread():
    """Two threads on a shared two-core machine are many times slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def ray_address():
    """Address of a local 2-CPU Ray cluster with ``device:cpu: 2`` (token auth on), shared by
    every Ray test of the session."""
    pytest.importorskip("ray")
    with ray_cluster() as address:
        yield address


@pytest.fixture(scope="session")
def supernets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("supernets")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    config = TrainConfig(epochs=1, batch_size=32, limit=96, bn_batches=2, spread_samples=1)
    train("avdigits", folder, config)
    torch.set_num_threads(threads)
    return folder


#: What every command says of AV-MNIST as MultiBench ships it (see ``write_avmnist_npy``).
MULTIBENCH_AUDIO = (
    "audio samples of dataset avmnist are 1×112×112 but preset avmnist expects 1×20×20"
)


def write_avmnist_npy(root, audio_size, sizes=(("train", 24), ("test", 6)), seed=0):
    """AV-MNIST in MultiBench's npy layout: flat 784-pixel images, ``audio_size``² spectrograms
    (MultiBench ships 112×112; the avmnist preset takes 20×20)."""
    rng = np.random.default_rng(seed)
    for source, n in sizes:
        for modality, shape in (("image", (n, 784)), ("audio", (n, audio_size, audio_size))):
            (root / modality).mkdir(parents=True, exist_ok=True)
            np.save(root / modality / f"{source}_data.npy", rng.uniform(0, 255, shape))
        np.save(root / f"{source}_labels.npy", np.arange(n) % 10)
    return root


def mac_priced_lut(path, spare=()):
    """Cost grows with MACs (so small backbones are cheap); energy twice the latency."""
    entries = {}
    for spec in PRESET.all_specs():
        if spec.key in spare:
            continue
        latency = 1e-3 + spec.macs() * 1e-8
        entries[spec.key] = {
            "latency_ms": {"median": latency},
            "energy_mj": {"total": 2 * latency},
        }
    Lut(device={"name": "macs", "runtime": "r", "precision": "fp32"}, entries=entries).save(path)
    return path


@pytest.fixture(scope="session")
def lut(tmp_path_factory):
    return mac_priced_lut(tmp_path_factory.mktemp("lut") / "macs.json")


def tiny(mode="sb-sf-hw", seed=0):
    return SearchConfig(
        evolution=EvolutionConfig(population=6, generations=2, quartile=0.5, seed=seed),
        darts=DartsConfig(epochs=1, batch_size=32),
        mode=mode,
        finetune_epochs=1,
        bn_batches=2,
        limit=96,
    )


def hnas(*args: object) -> subprocess.CompletedProcess:
    """Run the real console entry point, as a user would; wait for it to end."""
    return subprocess.run(
        [sys.executable, "-c", "from hnas_edge.cli import main; main()", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


def fast_device(min_time_s: float = 0.0) -> str:
    """A cpu device profile (onnxruntime, 1 thread, estimated energy) whose timing takes a few
    iterations per part: fast enough for tests, slow enough with ``min_time_s`` to interrupt."""
    return f"""name = "cpu"
runtime = "onnxruntime"
threads = 1
meter = "estimate"
nominal_power_w = 10.0
[timing]
warmup_s = 0.0
min_iters = 5
min_time_s = {min_time_s}
max_cv = 10.0
retries = 0
"""


def read_front(out):
    return json.loads((out / "front.json").read_text())


def run_search(supernets, lut, out, config, **options):
    inputs = SearchInputs(supernets, "avdigits", None, lut, config, out)
    runner, state = search(inputs, **options)
    return write_results(runner, state)


@pytest.fixture(scope="session")
def finished(supernets, lut, tmp_path_factory):
    """A finished tiny search (one thread, like the rest of the suite)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("search") / "run"
    run_search(supernets, lut, out, tiny())
    torch.set_num_threads(threads)
    return out
