"""`hnas deploy`: run an exported artifact with the device profile's runtime, measure it, and hold
it to what its sidecar promised (latency, energy, the task's metric).

``.plan`` files run on TensorRT, ``.ort`` on onnxruntime, ``.onnx`` on the device profile's
runtime (onnxruntime for the cpu profile, TensorRT builds it on a Jetson).

A model runs at the batch its sidecar records (``batch``: its LUT's, 1 for older sidecars):
``--bench`` times calls of that many samples and compares them with the prediction, which is
for that batch too; a fixed-batch graph is fed whole batches of that size.
"""

from __future__ import annotations

import zipfile
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hnas_edge.backend import Closing, Runtime, Source, get_runtime
from hnas_edge.checks import Fields, shown
from hnas_edge.data.metrics import METRICS
from hnas_edge.errors import HnasError
from hnas_edge.export.artifact import sidecar_path
from hnas_edge.io import read_json
from hnas_edge.profiling.device import DeviceProfile
from hnas_edge.profiling.drift import DriftReference
from hnas_edge.profiling.energy import EnergyMeasurer
from hnas_edge.profiling.pinning import pinned
from hnas_edge.space.shapes import check_input_shapes
from hnas_edge.space.specs import shape_text

Arrays = dict[str, np.ndarray]


@dataclass
class Deployed(Closing):
    """An artifact loaded in its runtime (``with open_artifact(...) as deployed:`` releases it)."""

    path: Path
    sidecar: dict[str, Any]
    runtime: Runtime
    graph_batch: int | None  # the batch the graph takes (every TensorRT plan's); None: any

    def run(self, inputs: Arrays, source: str = "the inputs") -> np.ndarray:
        """The model's outputs for any number of samples; ``source`` names where ``inputs``
        came from in an error. A fixed-batch graph gets whole batches, the last one filled up
        with copies of its last sample (whose outputs are dropped)."""
        check_inputs(self.sidecar, inputs, source)
        if self.graph_batch is None:
            return self.runtime.run(inputs)[0]
        n, size = len(next(iter(inputs.values()))), self.graph_batch
        outputs = []
        for start in range(0, n, size):
            rows = np.minimum(np.arange(start, start + size), n - 1)
            outputs.append(self.runtime.run({m: x[rows] for m, x in inputs.items()})[0])
        return np.concatenate(outputs)[:n]

    def close(self) -> None:
        self.runtime.close()


def read_sidecar(path: Path) -> dict[str, Any]:
    side = sidecar_path(path)
    if not side.is_file():
        raise HnasError(f"{path}: its sidecar {side.name} is missing; re-export with `hnas export`")
    sidecar = read_json(side, what="sidecar")
    check_sidecar(sidecar, Fields(f"sidecar {side}", "re-export with `hnas export`"))
    return sidecar


def check_sidecar(sidecar: Any, f: Fields) -> None:
    """The fields deploy reads: the batch (absent: 1), one input per modality (a name, that
    batch or "batch", then positive sizes), the output's task, the predicted cost and search
    figures."""
    f.obj(sidecar, "top level")
    batch = sidecar.get("batch", 1)
    f.integer(batch, "batch", ge=1)
    inputs = f.array(f.get(sidecar, "inputs", "inputs", "the model's inputs"), "inputs", 1)
    names = []
    for i, item in enumerate(inputs):
        where = f"inputs[{i}]"
        f.obj(item, where)
        names.append(f.name(item.get("name"), f"{where}.name"))
        shape = f.array(item.get("shape"), f"{where}.shape", 2)
        if shape[0] not in (batch, "batch") or isinstance(shape[0], bool):
            raise f.fail(f"{where}.shape[0]", shape[0], f'{batch} (the batch) or "batch"')
        for d, size in enumerate(shape[1:], 1):
            f.integer(size, f"{where}.shape[{d}]", ge=1)
    if len(set(names)) != len(names):
        raise f.fail("inputs[].name", names, "distinct names")
    output = f.obj(f.get(sidecar, "output", "output", "the model's output"), "output")
    f.choice(output.get("task"), "output.task", METRICS)
    f.optional_text(sidecar.get("dataset"), "dataset")
    f.optional_text(sidecar.get("data_dir"), "data_dir")
    predicted = f.optional_obj(sidecar.get("predicted"), "predicted")
    f.optional_number(predicted.get("latency_ms"), "predicted.latency_ms", gt=0)
    f.optional_number(predicted.get("energy_mj"), "predicted.energy_mj", ge=0)
    searched_for = f.optional_obj(sidecar.get("searched_for"), "searched_for")
    f.optional_text(searched_for.get("device"), "searched_for.device")
    reference = f.optional_obj(searched_for.get("reference"), "searched_for.reference")
    f.optional_text(reference.get("network"), "searched_for.reference.network")
    f.optional_number(reference.get("baseline_ms"), "searched_for.reference.baseline_ms", gt=0)
    metrics = f.optional_obj(sidecar.get("search_metrics"), "search_metrics")
    f.optional_number(metrics.get("test_metric"), "search_metrics.test_metric", ge=0, le=1)


def check_graph(path: Path, sidecar: dict[str, Any], runtime: Runtime) -> None:
    """The graph's inputs against the sidecar's (where the runtime lists them): every graph
    input declared, with the declared sizes (an exporter may drop an input nobody reads)."""
    session = getattr(runtime, "session", None)
    if session is None:
        return
    declared = {i["name"]: i["shape"] for i in sidecar["inputs"]}
    for graph_input in session.get_inputs():
        shape = declared.get(graph_input.name)
        if shape is None:
            raise HnasError(
                f"{path} takes input {graph_input.name!r}, which its sidecar does not declare "
                f"(it declares {sorted(declared)}); re-export with `hnas export`"
            )
        sizes = [d if isinstance(d, int) else None for d in graph_input.shape]
        if len(sizes) != len(shape) or any(
            g is not None and isinstance(s, int) and g != s
            for g, s in zip(sizes, shape, strict=False)
        ):
            raise HnasError(
                f"{path} takes {graph_input.name} of shape {graph_input.shape}; its sidecar "
                f"declares {shape}; re-export with `hnas export`"
            )


def runtime_name(path: Path, device: DeviceProfile) -> str:
    if path.suffix == ".plan":
        return "tensorrt"
    if path.suffix == ".ort":
        return "onnxruntime"
    if path.suffix == ".onnx":
        return "onnxruntime" if device.runtime == "torch" else device.runtime
    raise HnasError(f"{path}: give a .onnx, .ort or .plan file made by `hnas export`")


def artifact_source(path: Path) -> Source:
    """What an artifact is, by the suffix `hnas export` gave it (.ort is onnxruntime's ONNX)."""
    return Source.PLAN if path.suffix == ".plan" else Source.ONNX


def open_artifact(path: Path, device: DeviceProfile) -> Deployed:
    path = Path(path)
    if not path.is_file():
        raise HnasError(f"{path}: no such file")
    sidecar = read_sidecar(path)
    name = runtime_name(path, device)
    runtime = get_runtime(name, **device.runtime_options())
    runtime.load(artifact_source(path), path)
    check_graph(path, sidecar, runtime)
    fixed = name == "tensorrt" or sidecar["inputs"][0]["shape"][0] != "batch"
    return Deployed(path, sidecar, runtime, sidecar_batch(sidecar) if fixed else None)


def sidecar_batch(sidecar: dict[str, Any]) -> int:
    """The batch the model was priced at and is benchmarked at (1 for an older sidecar)."""
    return int(sidecar.get("batch", 1))


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
    """Random inputs of one batch of the sidecar's size."""
    rng = np.random.default_rng(seed)
    batch = sidecar_batch(sidecar)
    return {
        i["name"]: rng.standard_normal([batch, *i["shape"][1:]]).astype(np.float32)
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
    batch: int = 1  # samples per timed call; latency and energy are per batch, as predicted
    #: the drift reference now (mean of a timing before and after the model's) and when the
    #: LUT was profiled (the sidecar's ``searched_for.reference``); None where either is unknown
    reference_ms: float | None = None
    reference_baseline_ms: float | None = None

    @property
    def speed(self) -> float | None:
        """How fast this machine runs now relative to when the LUT was made (1.3: 30% faster)."""
        if not self.reference_ms or not self.reference_baseline_ms:
            return None
        return self.reference_baseline_ms / self.reference_ms

    @property
    def predicted_now_ms(self) -> float | None:
        """The prediction at today's speed: predicted × reference now / reference then."""
        if self.speed is None or not self.predicted_latency_ms:
            return None
        return self.predicted_latency_ms / self.speed

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
            "speed_vs_lut": self.speed,
            "predicted_now_ms": self.predicted_now_ms,
        }


def bench(deployed: Deployed, device: DeviceProfile, iterations: int) -> BenchReport:
    """Median and p90 latency over at least ``iterations`` timed runs at the sidecar's batch
    (the device profile's warm-up and timing rules), energy per run from its meter: per batch,
    as the sidecar's prediction is."""
    from dataclasses import replace

    if iterations < 2:
        raise HnasError(f"--bench {iterations}: give at least 2 iterations")
    inputs = example_inputs(deployed.sidecar)
    check_inputs(deployed.sidecar, inputs)
    settings = replace(device.timing, min_iters=iterations)
    reference = _reference_of(deployed.sidecar, device)
    with pinned(device.pin_core), reference or nullcontext():
        if reference is not None:
            reference.time()
        timing = deployed.runtime.time(inputs, settings)
        if reference is not None:
            reference.time()
    latency = float(timing.stats.median)
    runtime = deployed.runtime.name
    if runtime == device.runtime:
        with EnergyMeasurer.for_device(device) as measurer:
            reading = measurer.of_runtime(deployed.runtime, inputs, latency)
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
        reference_ms=(
            float(np.mean([r.latency_ms for r in reference.times])) if reference else None
        ),
        reference_baseline_ms=_searched_reference(deployed.sidecar),
        batch=sidecar_batch(deployed.sidecar),
    )


def _searched_reference(sidecar: dict[str, Any]) -> float | None:
    """The drift reference's latency when the LUT was profiled, where the sidecar records it
    for the reference network this version times."""
    from hnas_edge.profiling.drift import REFERENCE

    reference = (sidecar.get("searched_for") or {}).get("reference") or {}
    if reference.get("network") != REFERENCE:
        return None
    return reference.get("baseline_ms")


def _reference_of(sidecar: dict[str, Any], device: DeviceProfile) -> DriftReference | None:
    """The drift reference to time beside the model (with the device profile's runtime, as
    the LUT's was), or None where the sidecar has no reference figure to compare with."""
    if _searched_reference(sidecar) is None:
        return None
    return DriftReference(device, "deploy")


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


def read_npz(path: Path) -> Arrays:
    """The arrays of an ``.npz`` (one per modality, batch first), at least one row each and the
    same number of rows in every one; one line otherwise."""
    path = Path(path)
    hint = "save one array per modality with numpy.savez"
    if not path.is_file():
        raise HnasError(f"--input {path}: no such file; {hint}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise HnasError(f"--input {path} is a single array, not an .npz; {hint}")
        with loaded as archive:
            inputs = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise HnasError(f"{path} is not a readable .npz ({shown(exc)}); {hint}") from None
    if not inputs:
        raise HnasError(f"--input {path} holds no arrays; {hint}")
    rows = {name: (x.shape[0] if x.ndim else 0) for name, x in inputs.items()}
    if min(rows.values()) < 1 or len(set(rows.values())) != 1:
        raise HnasError(
            f"--input {path}: rows per array {rows}; give every modality the same number "
            "of samples, at least one"
        )
    return inputs


def nonfinite_warning(inputs: Arrays, source: str) -> str | None:
    """A line when any input holds NaN or infinity (a model's output on them means nothing)."""
    bad = {
        name: int(np.size(x) - np.isfinite(x).sum())
        for name, x in inputs.items()
        if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all()
    }
    if not bad:
        return None
    counts = ", ".join(f"{name}: {n}" for name, n in bad.items())
    return (
        f"warning: {source} holds non-finite values (NaN or infinity; {counts}); the "
        "predictions for those samples mean nothing: check the preprocessing"
    )


def predict_file(deployed: Deployed, path: Path) -> tuple[np.ndarray, str | None]:
    """Class predictions for the arrays of an ``.npz`` (one array per modality, preprocessed),
    and a warning line when its values are not all finite."""
    from hnas_edge.data.metrics import predictions

    inputs = read_npz(path)
    outputs = deployed.run(inputs, str(path))
    task = deployed.sidecar["output"]["task"]
    return predictions(outputs, task), nonfinite_warning(inputs, str(path))
