"""Device profiles: shipped by name or the user's own TOML, refused by name when wrong."""

from __future__ import annotations

import re

import pytest

from hnas_edge.errors import ConfigError
from hnas_edge.profiling.device import DeviceProfile, shipped_profiles


def test_every_shipped_profile_loads():
    assert shipped_profiles() == ["agx", "cpu", "gpu", "orin", "tx2"]
    for name in shipped_profiles():
        assert DeviceProfile.load(name).name == name


def test_the_cpu_profile_is_onnxruntime_on_one_thread():
    cpu = DeviceProfile.load("cpu")
    assert (cpu.runtime, cpu.threads, cpu.meter) == ("onnxruntime", 1, "rapl")
    assert cpu.runtime_options()["threads"] == 1


def test_jetson_profiles_use_tensorrt_fp16_and_jtop_at_a_named_power_mode():
    for name in ("agx", "tx2", "orin"):
        jetson = DeviceProfile.load(name)
        assert (jetson.runtime, jetson.precision, jetson.meter) == ("tensorrt", "fp16", "jtop")
        assert jetson.power_mode == "MAXN" and jetson.lock_clocks


def write(tmp_path, text):
    path = tmp_path / "mine.toml"
    path.write_text(text)
    return path


def test_a_user_toml_is_loaded_by_path(tmp_path):
    path = write(
        tmp_path, 'name = "pi5"\nruntime = "onnxruntime"\nthreads = 4\n[timing]\nmin_iters = 50\n'
    )
    device = DeviceProfile.load(str(path))
    assert (device.name, device.threads, device.timing.min_iters) == ("pi5", 4, 50)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'name = "x"\nruntime = "onnxruntime"\ncolour = 1\n',
            "unknown field colour; known: name, runtime",
        ),
        (
            'name = "x"\nruntime = "tflite"\n',
            "runtime = 'tflite'; allowed: one of onnxruntime, torch",
        ),
        ('name = "x"\nruntime = "torch"\nmeter = "wattmeter"\n', "meter = 'wattmeter'"),
        ('name = "x"\nruntime = "torch"\nthreads = 0\n', "threads = 0; allowed: an integer >= 1"),
        ('name = "x"\nruntime = "torch"\n[timing]\nmax_cv = -1\n', "timing.max_cv = -1"),
        ('name = "x"\nruntime = "torch"\n[timing]\nwarm = 1\n', "unknown field timing.warm"),
        ('name = "x"\nruntime = "torch"\nlock_clocks = "yes"\n', "lock_clocks = 'yes'"),
    ],
)
def test_a_bad_profile_is_refused_naming_the_field(tmp_path, text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        DeviceProfile.load(str(write(tmp_path, text)))


def test_an_unknown_device_name_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="unknown device 'nano'; use one of agx, cpu, gpu"):
        DeviceProfile.load("nano")
