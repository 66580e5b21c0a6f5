"""The command line: version, help, and one-line errors with exit code 2."""

import pytest
from conftest import MULTIBENCH_AUDIO, hnas, write_avmnist_npy
from typer.testing import CliRunner

from hnas_edge import __version__
from hnas_edge.profiling.lut import Lut

runner = CliRunner()


def small_lut(path, name="cpu", keys=("conv|x=1",)):
    entries = {k: {"latency_ms": {"median": 0.1, "std": 0.001}} for k in keys}
    Lut(device={"name": name, "runtime": "onnxruntime", "precision": "fp32"}, entries=entries).save(
        path
    )
    return path


def test_version_prints_the_package_version():
    result = hnas("--version")
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_help_lists_working_commands():
    result = hnas("--help")
    assert result.returncode == 0
    for command in ("space", "profile", "train", "lut", "search", "export", "deploy", "quickstart"):
        assert command in result.stdout


def test_lut_show_summarises_a_lut(tmp_path):
    result = hnas("lut", "show", str(small_lut(tmp_path / "cpu.json")))
    assert result.returncode == 0
    assert "1 entries" in result.stdout


def test_lut_show_says_how_much_slow_timing_the_quiet_gate_dropped(tmp_path):
    entries = {
        f"conv|x={i}": {"latency_ms": {"median": 0.1, "std": 0.001}, "dropped_s": dropped}
        for i, dropped in enumerate((1.5, 0.0, 0.5))
    }
    device = {"name": "cpu", "runtime": "onnxruntime", "precision": "fp32"}

    def shown(tolerance):
        path = tmp_path / f"{tolerance}.json"
        Lut(device=device, settings={"quiet_tolerance": tolerance}, entries=entries).save(path)
        return hnas("lut", "show", str(path)).stdout

    assert "2.0 s of timing dropped while the machine ran slow, over 3 entries" in shown(0.15)
    assert "slow spells: not watched (quiet_tolerance 0)" in shown(0)


def test_bad_input_gives_one_line_and_exit_code_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    for args in (["lut", "show", str(bad)], ["lut", "show", str(tmp_path / "absent.json")]):
        result = hnas(*args)
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_lut_merge_joins_two_shards(tmp_path):
    a = small_lut(tmp_path / "a.json", keys=("conv|x=1",))
    b = small_lut(tmp_path / "b.json", keys=("conv|x=2",))
    result = hnas("lut", "merge", str(a), str(b), "-o", str(tmp_path / "ab.json"))
    assert result.returncode == 0, result.stderr
    assert set(Lut.load(tmp_path / "ab.json").entries) == {"conv|x=1", "conv|x=2"}


def test_merging_luts_of_two_devices_is_refused_and_writes_nothing(tmp_path):
    a = small_lut(tmp_path / "a.json", name="cpu")
    b = small_lut(tmp_path / "b.json", name="agx")
    result = hnas("lut", "merge", str(a), str(b), "-o", str(tmp_path / "ab.json"))
    assert result.returncode == 2
    assert "different targets" in result.stderr
    assert not (tmp_path / "ab.json").exists()


def test_space_show_prints_sizes_of_each_backbone():
    result = hnas("space", "show", "avmnist")
    assert result.returncode == 0
    assert "7371" in result.stdout  # one stage, depth 2-4, 3 kernels × 3 expand ratios
    assert "fusion candidates of audio: 16×10×10, 24×5×5, 80" in result.stdout


def test_space_show_refuses_an_unknown_preset_in_one_line():
    result = hnas("space", "show", "cifar")
    assert result.returncode == 2
    assert (
        result.stderr.strip() == "error: unknown space 'cifar'; use one of avmnist, memes, mmimdb"
    )


def test_lut_check_lists_what_a_space_needs_and_exits_1_when_keys_are_missing(tmp_path):
    result = hnas("lut", "check", str(small_lut(tmp_path / "cpu.json")), "--space", "avmnist")
    assert result.returncode == 1
    assert "57 of 57 keys of space avmnist (ours accounting) missing" in result.stdout
    assert "missing fusion|op=CatConvMish|C=192|L=16" in result.stdout


def full_lut(path, space="avmnist", latency=0.1):
    """A LUT holding every key of a space, each part costing ``latency`` ms and 2·latency mJ."""
    from hnas_edge.space.presets import get_preset

    entries = {
        spec.key: {
            "latency_ms": {"median": latency, "std": 0.0},
            "energy_mj": {"total": 2 * latency, "dynamic": None, "source": "test"},
        }
        for spec in get_preset(space).all_specs()
    }
    device = {"name": "cpu", "runtime": "onnxruntime", "precision": "fp32"}
    Lut(device=device, entries=entries).save(path)
    return path


def test_lut_predict_prices_one_backbone_part_by_part(tmp_path):
    lut = full_lut(tmp_path / "cpu.json")
    config = '{"ks": [5, 5, 5, 7], "e": [3, 6, 4, 3], "d": [2]}'
    result = hnas("lut", "predict", str(lut), "--space", "avmnist", "--config", config,
                  "--modality", "image")  # fmt: skip
    assert result.returncode == 0, result.stderr
    # stem, first, two stage blocks, final expand, feature mix, classifier: 7 parts of 0.1 ms
    assert "image backbone on cpu (whole backbone with classifier accounting, 7 parts): " \
        "sum 0.70 ms, 1.4000 mJ" in result.stdout  # fmt: skip


def test_lut_predict_prices_a_whole_network_under_either_accounting(tmp_path):
    import json

    from hnas_edge.space.mmnn import arch_parts, random_arch
    from hnas_edge.space.presets import get_preset

    preset = get_preset("avmnist")
    arch = random_arch(preset, rng=4)
    config = tmp_path / "arch.json"
    config.write_text(json.dumps(arch.to_dict()))
    lut = full_lut(tmp_path / "cpu.json")
    for accounting in ("ours", "paper"):
        n = len(arch_parts(preset, arch, accounting))
        result = hnas("lut", "predict", str(lut), "--space", "avmnist", "--config", str(config),
                      "--accounting", accounting)  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert f"({accounting} accounting, {n} parts): sum {0.1 * n:.2f} ms" in result.stdout


def test_lut_predict_refuses_a_config_outside_the_space_in_one_line(tmp_path):
    lut = full_lut(tmp_path / "cpu.json")
    result = hnas("lut", "predict", str(lut), "--space", "avmnist", "--modality", "audio",
                  "--config", '{"ks": [4, 3, 3, 3], "e": [3, 3, 3, 3], "d": [2]}')  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == "error: config ks[0] = 4; allowed values: 3, 5, 7"


def test_search_refuses_bad_input_in_one_line(tmp_path):
    from hnas_edge.space.presets import get_preset

    lut = small_lut(tmp_path / "cpu.json")
    full = small_lut(
        tmp_path / "full.json", keys=[s.key for s in get_preset("avmnist").all_specs()]
    )
    (tmp_path / "sn").mkdir()
    result = hnas("search", "--lut", str(full), "--supernets", str(tmp_path / "sn"), "--out", "o")
    assert result.returncode == 2 and "no trained supernets" in result.stderr
    cases = [
        ["--lut", lut, "--supernets", tmp_path / "sn", "--out", tmp_path / "o1"],  # LUT too small
        ["--lut", lut, "--supernets", tmp_path / "sn", "--mode", "xx", "--out", tmp_path / "o2"],
        [
            "--lut",
            lut,
            "--supernets",
            tmp_path / "sn",
            "--population",
            "1",
            "--out",
            tmp_path / "o3",
        ],
        ["--lut", full, "--ray-address", "127.0.0.1:6379", "--out", tmp_path / "o4"],  # no ray
    ]
    for args in cases:
        result = hnas("search", *map(str, args))
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_an_error_line_is_printed_verbatim_brackets_and_all(monkeypatch, capsys):
    from hnas_edge import cli
    from hnas_edge.errors import MissingLibraryError

    def app(**_):
        raise MissingLibraryError("nvidia-ml-py", 'pip install "hnas-edge[gpu]"', "nvml")

    monkeypatch.setattr(cli, "app", app)
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 2
    assert 'pip install "hnas-edge[gpu]"' in capsys.readouterr().err


def test_train_refuses_multibench_sized_audio_before_training(tmp_path):
    data = write_avmnist_npy(tmp_path / "avmnist", audio_size=112)
    result = hnas("train", "--dataset", "avmnist", "--data-dir", str(data), "--limit", "8",
                  "--epochs", "1", "--out", str(tmp_path / "sn"))  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {MULTIBENCH_AUDIO}: resample the spectrograms to 20×20; see docs/datasets.md"
    )
    assert not (tmp_path / "sn").exists()


def test_search_refuses_multibench_sized_audio_before_training_supernets(tmp_path):
    data = write_avmnist_npy(tmp_path / "avmnist", audio_size=112)
    lut = full_lut(tmp_path / "cpu.json")
    result = hnas("search", "--lut", str(lut), "--dataset", "avmnist", "--data-dir", str(data),
                  "--out", str(tmp_path / "run"))  # fmt: skip
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and MULTIBENCH_AUDIO in result.stderr
    assert "training" not in result.stdout and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "flags, says",
    [
        (["--hw-weight", "nan"], "Invalid value for '--hw-weight'"),
        (["--hw-weight", "-1"], "Invalid value for '--hw-weight'"),
        (["--budget", "huge"], "unknown --budget 'huge'; use one of small, paper"),
        (["--operators", "Sum,Max"], "fusion operators ['Sum', 'Max']: give distinct names"),
    ],
)
def test_bad_stage2_settings_are_refused_before_any_work(tmp_path, flags, says):
    out = tmp_path / "out"
    result = hnas("search", "--lut", str(tmp_path / "absent.json"), "--out", str(out), *flags)
    assert result.returncode == 2
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()
