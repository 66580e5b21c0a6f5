"""Runtimes behind one interface: load, run, time, describe; lazy imports, one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hnas_edge.backend import get_runtime
from hnas_edge.backend.onnx import export_onnx
from hnas_edge.backend.tensorrt import api_for_version, precision_flags, workspace_setter
from hnas_edge.backend.timing import TimingSettings
from hnas_edge.errors import ConfigError, HnasError, MissingLibraryError

FAST = TimingSettings(warmup_s=0, min_iters=5, min_time_s=0, max_cv=10, retries=0)


@pytest.fixture
def linear_onnx(tmp_path):
    torch.manual_seed(0)
    module = torch.nn.Linear(8, 4).eval()
    x = torch.randn(1, 8)
    return module, x, export_onnx(module, {"input0": x}, tmp_path / "linear.onnx")


def test_onnxruntime_runs_the_model_as_torch_does_and_times_it(linear_onnx):
    module, x, path = linear_onnx
    runtime = get_runtime("onnxruntime", threads=1)
    runtime.load(path)
    (out,) = runtime.run({"input0": x.numpy()})
    np.testing.assert_allclose(out, module(x).detach().numpy(), atol=1e-6)
    timing = runtime.time({"input0": x.numpy()}, FAST)
    assert timing.stats.n >= 5 and timing.stats.median > 0
    assert runtime.describe()["threads"] == 1


def test_onnxruntime_ignores_inputs_the_graph_does_not_read(linear_onnx):
    _, x, path = linear_onnx
    runtime = get_runtime("onnxruntime")
    runtime.load(path)
    assert len(runtime.run({"input0": x.numpy(), "audio": np.zeros(3, np.float32)})) == 1


def test_torch_runtime_times_modules_on_cpu():
    runtime = get_runtime("torch", threads=1)
    module = torch.nn.Linear(8, 4)
    runtime.load_module(module, {"input0": torch.randn(1, 8)})
    x = np.ones((1, 8), np.float32)
    np.testing.assert_allclose(
        runtime.run({"input0": x})[0], module(torch.from_numpy(x)).detach().numpy(), atol=1e-6
    )
    assert runtime.time({"input0": x}, FAST).stats.n >= 5
    with pytest.raises(HnasError, match="times torch modules, not ONNX files"):
        runtime.load("model.onnx")


def test_an_unknown_runtime_is_refused_with_the_list():
    with pytest.raises(ConfigError, match="unknown runtime 'tvm'; use one of onnxruntime, torch"):
        get_runtime("tvm")


@pytest.mark.parametrize(
    ("version", "api", "workspace"),
    [
        ("8.2.1.8", "bindings", "max_workspace_size"),
        ("8.4.1", "bindings", "memory_pool"),
        ("8.5.2.2", "tensors", "memory_pool"),
        ("8.6.1", "tensors", "memory_pool"),
        ("10.3.0", "tensors", "memory_pool"),
    ],
)
def test_tensorrt_api_follows_the_version(version, api, workspace):
    assert api_for_version(version) == api
    assert workspace_setter(version) == workspace


def test_tensorrt_precision_is_guarded_by_the_platform():
    assert precision_flags("fp16", fast_fp16=True, fast_int8=False) == ["FP16"]
    assert precision_flags("fp32", fast_fp16=False, fast_int8=False) == []
    with pytest.raises(HnasError, match="no fast FP16"):
        precision_flags("fp16", fast_fp16=False, fast_int8=False)
    with pytest.raises(HnasError, match="calibration set"):
        precision_flags("int8", fast_fp16=True, fast_int8=True)


def test_a_missing_tensorrt_ends_in_one_actionable_line():
    pytest.importorskip("onnx")
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(MissingLibraryError, match="tensorrt"):
            get_runtime("tensorrt")
    else:
        pytest.skip("tensorrt is installed here: the hardware test below covers it")


@pytest.mark.tensorrt
def test_tensorrt_builds_runs_and_times_an_engine(linear_onnx):
    pytest.importorskip("tensorrt")
    module, x, path = linear_onnx
    runtime = get_runtime("tensorrt", precision="fp32")
    runtime.load(path)
    (out,) = runtime.run({"input0": x.numpy()})
    np.testing.assert_allclose(out, module(x).detach().numpy(), atol=1e-3)
    assert runtime.time({"input0": x.numpy()}, FAST).stats.median > 0


@pytest.mark.gpu
def test_torch_runtime_on_cuda_with_graphs_matches_eager():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here")
    runtime = get_runtime("torch", cuda_graphs=True)
    module = torch.nn.Linear(8, 4)
    x = np.ones((1, 8), np.float32)
    expected = module(torch.from_numpy(x)).detach().numpy()  # before the runtime moves it
    runtime.load_module(module, {"input0": torch.randn(1, 8)})
    assert runtime.time({"input0": x}, FAST).stats.median > 0
    np.testing.assert_allclose(runtime.run({"input0": x})[0], expected, atol=1e-5)
