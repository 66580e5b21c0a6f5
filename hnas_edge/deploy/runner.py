"""`hnas deploy`: run an exported artifact with the device profile's runtime, measure it, and hold
it to what its sidecar promised (latency, energy, the task's metric).

``.plan`` files run on TensorRT, ``.ort`` on onnxruntime, ``.onnx`` on the device profile's
runtime (onnxruntime for the cpu profile, TensorRT builds it on a Jetson).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hnas_edge.errors import HnasError
from hnas_edge.export.artifact import sidecar_path
from hnas_edge.profiling.device import DeviceProfile
from hnas_edge.profiling.energy import EnergyMeasurer
from hnas_edge.profiling.runtimes import Runtime, get_runtime
from hnas_edge.space.shapes import check_input_shapes
from hnas_edge.space.specs import shape_text

Arrays = dict[str, np.ndarray]


@dataclass
class Deployed:
    path: Path
    sidecar: dict[str, Any]
    runtime: Runtime
    batch_one: bool  # the graph takes batch 1 (the default export, and every TensorRT plan)

    def run(self, inputs: Arrays, source: str = "the inputs") -> np.ndarray:
        """The model's outputs for a batch; ``source`` names where ``inputs`` came from in an
        error."""
        check_inputs(self.sidecar, inputs, source)
        if not self.batch_one:
            return self.runtime.run(inputs)[0]
        n = len(next(iter(inputs.values())))
        rows = [self.runtime.run({m: x[i : i + 1] for m, x in inputs.items()})[0] for i in range(n)]
        return np.concatenate(rows)

    def close(self) -> None:
        self.runtime.close()


def read_sidecar(path: Path) -> dict[str, Any]:
    side = sidecar_path(path)
    if not side.is_file():
        raise HnasError(f"{path}: its sidecar {side.name} is missing; re-export with `hnas export`")
    try:
        return json.loads(side.read_text())
    except json.JSONDecodeError as exc:
        raise HnasError(
            f"{side} is not valid JSON ({exc.msg}); re-export with `hnas export`"
        ) from None


def runtime_name(path: Path, device: DeviceProfile) -> str:
    if path.suffix == ".plan":
        return "tensorrt"
    if path.suffix == ".ort":
        return "onnxruntime"
    if path.suffix == ".onnx":
        return "onnxruntime" if device.runtime == "torch" else device.runtime
    raise HnasError(f"{path}: give a .onnx, .ort or .plan file made by `hnas export`")


def open_artifact(path: Path, device: DeviceProfile) -> Deployed:
    path = Path(path)
    if not path.is_file():
        raise HnasError(f"{path}: no such file")
    sidecar = read_sidecar(path)
    name = runtime_name(path, device)
    runtime = get_runtime(name, **device.runtime_options())
    runtime.load(path)
    batch_one = name == "tensorrt" or sidecar["inputs"][0]["shape"][0] == 1
    return Deployed(path, sidecar, runtime, batch_one)


def declared_shapes(sidecar: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """One sample's shape per input (no batch dimension), as the sidecar declares them."""
    return {i["name"]: tuple(i["shape"][1:]) for i in sidecar["inputs"]}


def check_inputs(sidecar: dict[str, Any], inputs: Arrays, source: str = "the inputs") -> None:
    """Names, per-sample shapes and dtype as the sidecar declares them; one line otherwise."""
    expected = declared_shapes(sidecar)
    if set(inputs) != set(expected):
        raise HnasError(
            f"inputs {sorted(inputs)} do not match the model's {sorted(expected)}; "
            "give one array per modality"
        )
    for name, x in inputs.items():
        if x.ndim != len(expected[name]) + 1:
            raise HnasError(
                f"input {name} of {source} has {x.ndim} dimensions; the model takes "
                f"{len(expected[name]) + 1}, batch first (N×{shape_text(expected[name])})"
            )
    got = {name: x.shape[1:] for name, x in inputs.items()}
    check_input_shapes(got, expected, "the model", source)
    for name, x in inputs.items():
        if x.dtype != np.float32:
            raise HnasError(f"input {name} is {x.dtype}; the model takes float32 (preprocessed)")


def example_inputs(sidecar: dict[str, Any], seed: int = 0) -> Arrays:
    rng = np.random.default_rng(seed)
    return {
        i["name"]: rng.standard_normal([1, *i["shape"][1:]]).astype(np.float32)
        for i in sidecar["inputs"]
    }


@dataclass(frozen=True)
class BenchReport:
    runtime: str
    latency_median_ms: float
    latency_p90_ms: float
    iterations: int
    energy_mj: float | None
    energy_source: str
    predicted_latency_ms: float | None
    predicted_energy_mj: float | None
    predicted_for: str | None

    @property
    def latency_error(self) -> float | None:
        """(measured − predicted) / predicted."""
        if not self.predicted_latency_ms:
            return None
        return self.latency_median_ms / self.predicted_latency_ms - 1

    @property
    def energy_error(self) -> float | None:
        if not self.predicted_energy_mj or self.energy_mj is None:
            return None
        return self.energy_mj / self.predicted_energy_mj - 1

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "latency_error": self.latency_error,
            "energy_error": self.energy_error,
        }


def bench(deployed: Deployed, device: DeviceProfile, iterations: int) -> BenchReport:
    """Median and p90 latency over at least ``iterations`` timed runs at batch 1 (the device
    profile's warm-up and timing rules), energy per inference from its meter."""
    from dataclasses import replace

    if iterations < 2:
        raise HnasError(f"--bench {iterations}: give at least 2 iterations")
    inputs = example_inputs(deployed.sidecar)
    check_inputs(deployed.sidecar, inputs)
    settings = replace(device.timing, min_iters=iterations)
    timing = deployed.runtime.time(inputs, settings)
    latency = float(timing.stats.median)
    runtime = deployed.runtime.name
    if runtime == device.runtime:
        measurer = EnergyMeasurer.for_device(device)
        try:
            reading = measurer.of_runtime(deployed.runtime, inputs, latency)
        finally:
            measurer.close()
    else:  # e.g. an .onnx under the gpu profile runs on onnxruntime's CPU provider
        reading = {"source": f"not measured: ran on {runtime}, not the profile's {device.runtime}"}
    predicted = deployed.sidecar.get("predicted", {})
    return BenchReport(
        runtime=runtime,
        latency_median_ms=latency,
        latency_p90_ms=float(timing.stats.p90),
        iterations=timing.stats.n,
        energy_mj=reading.get("total"),
        energy_source=reading.get("source", "?"),
        predicted_latency_ms=predicted.get("latency_ms"),
        predicted_energy_mj=predicted.get("energy_mj"),
        predicted_for=(deployed.sidecar.get("searched_for") or {}).get("device"),
    )


def evaluate_split(
    deployed: Deployed, split: str, batch: int = 256, limit: int | None = None
) -> dict[str, Any]:
    """The task's metric (``metric``: accuracy or weighted_f1; ``value``) on a split (its first
    ``limit`` samples) of the dataset the model was searched on, beside the search's test figure
    (``search_test_metric``)."""
    from hnas_edge.data import load_dataset, metrics
    from hnas_edge.train.batches import modality_tensors

    side = deployed.sidecar
    data = load_dataset(side["dataset"], side.get("data_dir"), split=split)
    source = f"dataset {data.name}"
    check_input_shapes(data.input_shapes, declared_shapes(side), "the model", source)
    n = min(len(data), limit or len(data))
    tensors = {i["name"]: modality_tensors(data, i["name"], n) for i in side["inputs"]}
    inputs = {m: x for m, (x, _) in tensors.items()}
    logits = np.concatenate(
        [
            deployed.run({m: x[s : s + batch].float().numpy() for m, x in inputs.items()}, source)
            for s in range(0, n, batch)
        ]
    )
    targets = next(iter(tensors.values()))[1].numpy()
    task = side["output"]["task"]
    return {
        "split": split,
        "samples": n,
        "metric": metrics.metric_of(task),
        "value": metrics.score(logits, targets, task),
        "search_test_metric": (side.get("search_metrics") or {}).get("test_metric"),
    }


def predict_file(deployed: Deployed, path: Path) -> np.ndarray:
    """Class predictions for the arrays of an ``.npz`` (one array per modality, preprocessed)."""
    try:
        with np.load(path) as archive:
            inputs = {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as exc:
        raise HnasError(
            f"{path} is not a readable .npz ({exc}); save arrays with numpy.savez"
        ) from None
    from hnas_edge.data.metrics import predictions

    return predictions(deployed.run(inputs, str(path)), deployed.sidecar["output"]["task"])
