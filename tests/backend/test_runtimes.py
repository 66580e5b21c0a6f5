"""Runtimes behind one interface: each says which sources it loads (a module, an ONNX file, a
plan); load, run, time, describe; context managers; lazy imports, one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hnas_edge.backend import Source, get_runtime, load
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
    runtime.load(Source.ONNX, path)
    (out,) = runtime.run({"input0": x.numpy()})
    np.testing.assert_allclose(out, module(x).detach().numpy(), atol=1e-6)
    timing = runtime.time({"input0": x.numpy()}, FAST)
    assert timing.stats.n >= 5 and timing.stats.median > 0
    assert runtime.describe()["threads"] == 1


def test_onnxruntime_ignores_inputs_the_graph_does_not_read(linear_onnx):
    _, x, path = linear_onnx
    runtime = get_runtime("onnxruntime")
    runtime.load(Source.ONNX, path)
    assert len(runtime.run({"input0": x.numpy(), "audio": np.zeros(3, np.float32)})) == 1


def test_torch_runtime_times_modules_on_cpu():
    runtime = get_runtime("torch", threads=1)
    module = torch.nn.Linear(8, 4)
    runtime.load(Source.MODULE, module, ["input0"])
    x = np.ones((1, 8), np.float32)
    np.testing.assert_allclose(
        runtime.run({"input0": x})[0], module(torch.from_numpy(x)).detach().numpy(), atol=1e-6
    )
    assert runtime.time({"input0": x}, FAST).stats.n >= 5
    with pytest.raises(HnasError, match="the torch runtime cannot load an ONNX file; give it a"):
        runtime.load(Source.ONNX, "model.onnx")


def test_each_runtime_says_which_sources_it_loads():
    assert get_runtime("onnxruntime").accepts == {Source.ONNX}
    assert get_runtime("torch").accepts == {Source.MODULE}


def test_a_module_is_exported_to_onnx_for_a_runtime_that_reads_onnx_only(tmp_path):
    """The one conversion: the module becomes ``model.onnx`` in the work folder, and only the
    inputs the exported graph kept come back (an exporter drops an input nobody reads)."""

    class FirstOnly(torch.nn.Module):
        def forward(self, a, b):
            return a * 2

    example = {"a": torch.ones(1, 3), "b": torch.ones(1, 5)}
    with get_runtime("onnxruntime") as runtime:
        inputs = load(runtime, Source.MODULE, FirstOnly(), example, tmp_path)
        assert (tmp_path / "model.onnx").is_file()
        assert list(inputs) == ["a"] and isinstance(inputs["a"], np.ndarray)
        np.testing.assert_allclose(runtime.run(inputs)[0], 2 * np.ones((1, 3)))


def test_a_module_runtime_is_handed_the_module_itself(tmp_path):
    module = torch.nn.Linear(8, 4)
    with get_runtime("torch", threads=1) as runtime:
        inputs = load(runtime, Source.MODULE, module, {"input0": torch.ones(1, 8)}, tmp_path)
        assert runtime.module is module and list(tmp_path.iterdir()) == []
        assert runtime.run(inputs)[0].shape == (1, 4)


def test_a_plan_is_refused_in_one_line_by_a_runtime_that_cannot_read_plans(tmp_path):
    with pytest.raises(HnasError) as error:
        load(get_runtime("onnxruntime"), Source.PLAN, b"plan", {}, tmp_path)
    assert str(error.value) == (
        "the onnxruntime runtime cannot load a TensorRT plan; give it an ONNX file"
    )


def test_leaving_a_runtime_block_releases_its_model(linear_onnx):
    _, x, path = linear_onnx
    with get_runtime("onnxruntime") as runtime:
        runtime.load(Source.ONNX, path)
        assert runtime.run({"input0": x.numpy()})
    with pytest.raises(HnasError, match="no model loaded"):
        runtime.run({"input0": x.numpy()})


def test_a_file_onnxruntime_cannot_load_is_refused_in_one_line(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(HnasError, match=f"onnxruntime cannot load {broken}") as error:
        get_runtime("onnxruntime").load(Source.ONNX, broken)
    assert "\n" not in str(error.value)


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
    runtime.load(Source.ONNX, path)
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
    runtime.load(Source.MODULE, module, ["input0"])
    assert runtime.time({"input0": x}, FAST).stats.median > 0
    np.testing.assert_allclose(runtime.run({"input0": x})[0], expected, atol=1e-5)
