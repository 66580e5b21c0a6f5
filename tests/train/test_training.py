"""Supernet training: the sandwich rule, batch-norm recalibration, checkpoints and resume."""

from __future__ import annotations

import json
import random

import pytest
import torch
from torch import nn

from hnas_edge.data import load_dataset
from hnas_edge.errors import HnasError
from hnas_edge.space.ofa import OFASupernet
from hnas_edge.space.presets import get_preset
from hnas_edge.train import checkpoint
from hnas_edge.train.config import TrainConfig
from hnas_edge.train.evaluation import recalibrate_bn, task_metric
from hnas_edge.train.loop import load_supernets, train, trained_preset
from hnas_edge.train.sandwich import sandwich_step
from hnas_edge.train.scorer import SubnetScorer


@pytest.fixture(autouse=True)
def one_thread():
    """Two threads on a shared two-core machine are many times slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TINY = TrainConfig(
    epochs=2, batch_size=32, limit=96, bn_batches=2, n_random=1, patience=5, spread_samples=1
)


@pytest.fixture
def audio_net():
    torch.manual_seed(0)
    return OFASupernet(get_preset("avmnist").backbone("audio"))


def test_a_sandwich_step_trains_the_largest_and_the_smallest_subnet(audio_net):
    x, y = torch.randn(16, 1, 20, 20), torch.randint(0, 10, (16,))
    block = audio_net.blocks[0]
    before_outer = block.expand.conv.weight[48:].clone()  # channels only expand 6 uses (16·6=96)
    before_inner = block.expand.conv.weight[:48].clone()  # channels every expand ratio uses
    optimizer = torch.optim.Adam(audio_net.parameters(), lr=1e-2)
    sandwich_step(audio_net, x, y, optimizer, random.Random(0), n_random=1, task="multiclass")
    assert not torch.equal(block.expand.conv.weight[48:], before_outer)
    assert not torch.equal(block.expand.conv.weight[:48], before_inner)


def test_recalibration_gives_each_subnet_its_own_batch_norm_statistics(audio_net):
    x = torch.randn(64, 1, 20, 20) * 3 + 1
    bn = audio_net.blocks[0].depthwise.bn
    audio_net.set_active(audio_net.min_config())
    recalibrate_bn(audio_net, x, batch_size=32, n_batches=2)
    small = bn.running_mean[:48].clone()
    assert not torch.allclose(small, torch.zeros(48))  # statistics were really estimated
    audio_net.set_active(audio_net.max_config())
    recalibrate_bn(audio_net, x, batch_size=32, n_batches=2)
    assert not torch.allclose(bn.running_mean[:48], small)  # the max subnet's own statistics
    assert not audio_net.training


def test_a_split_is_scored_whole_not_as_a_mean_over_batches():
    """Weighted F1 of batches [2 films], [1 film] would average 2/3 and 1 to 5/6."""
    logits = torch.tensor([[1.0, -1.0], [-1.0, -1.0], [-1.0, 1.0]])  # the net passes them on
    genres = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # class 0: tp 1, fn 1 -> F1 2/3 (support 2); class 1: tp 1 -> F1 1 (support 1)
    whole = (2 / 3 * 2 + 1) / 3
    assert task_metric(nn.Identity(), logits, genres, "multilabel", batch=2) == pytest.approx(whole)


def test_a_multiclass_split_is_scored_by_accuracy():
    logits, digits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]]), torch.tensor([0, 1, 1])
    assert task_metric(nn.Identity(), logits, digits, "multiclass", batch=2) == pytest.approx(2 / 3)


def test_checkpoints_load_with_weights_only_and_bad_files_are_refused(tmp_path, audio_net):
    path = tmp_path / "c.pt"
    rng = random.Random(3)
    checkpoint.save(
        path, {"model": audio_net.state_dict(), "rng": checkpoint.python_rng_state(rng)}
    )
    loaded = torch.load(path, weights_only=True)
    fresh = random.Random()
    checkpoint.set_python_rng_state(fresh, loaded["rng"])
    assert fresh.random() == rng.random()
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(HnasError, match="not a loadable checkpoint"):
        checkpoint.load(tmp_path / "bad.pt")


def weights(out, modality):
    return checkpoint.load(out / modality / "checkpoint.pt")["model"]


class Killed(Exception):
    """Stands for a kill right after an epoch's checkpoint was written."""


def kill_after_first_epoch(modality, epoch, total, figures):
    if epoch == 1:
        raise Killed


def test_an_interrupted_run_resumes_to_the_same_weights_and_a_finished_one_is_left_alone(
    tmp_path,
):
    """A finished run resumed again (a search resumed without --supernets does that) trains and
    writes nothing: its train.json keeps its bytes, so the search still knows its inputs."""
    whole, split = tmp_path / "whole", tmp_path / "split"
    train("avdigits", whole, TINY)
    with pytest.raises(Killed):
        train("avdigits", split, TINY, progress=kill_after_first_epoch)
    record = train("avdigits", split, TINY, resume=True)
    assert record["modalities"]["image"]["epochs_run"] == 2
    history = record["modalities"]["image"]["history"]
    assert [entry["epoch"] for entry in history] == [1, 2]  # the killed run's epoch kept
    assert all(entry["seconds"] > 0 for entry in history)  # each epoch's time, for s/epoch
    for modality in ("image", "audio"):
        a, b = weights(whole, modality), weights(split, modality)
        for name in a:
            assert torch.allclose(a[name].float(), b[name].float(), atol=1e-5), name
    written = (split / "train.json").read_bytes()
    assert train("avdigits", split, TINY, resume=True) == json.loads(written)
    assert (split / "train.json").read_bytes() == written


def test_an_existing_run_is_not_overwritten(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "train.json").write_text("{}")
    with pytest.raises(HnasError, match="pass --resume"):
        train("avdigits", tmp_path / "run", TINY)


def test_a_run_recorded_under_another_metric_does_not_resume(tmp_path):
    """train.json names its metric; one without (older runs ranked on accuracy alone) is refused
    before any work rather than mixing two metrics in one history."""
    (tmp_path / "run").mkdir()
    record = {"settings": {"config": TINY.to_dict()}, "modalities": {}}
    (tmp_path / "run" / "train.json").write_text(json.dumps(record))
    with pytest.raises(HnasError, match="other settings"):
        train("avdigits", tmp_path / "run", TINY, resume=True)


def test_trained_supernets_load_back_and_score_subnets_deterministically(tmp_path):
    out = tmp_path / "run"
    once = TrainConfig(**{**TINY.to_dict(), "epochs": 1, "spread_samples": 3})
    record = train("avdigits", out, once)
    assert record["metric"] == "accuracy"  # avdigits is multiclass
    audio = record["modalities"]["audio"]
    assert 0.0 <= audio["val_metric_min"] <= 1.0
    assert len(audio["val_metric_random"]) == 3
    assert record["settings"]["config"] == once.to_dict()
    assert record["provenance"]["versions"]
    nets = load_supernets(out)
    assert set(nets) == {"image", "audio"}
    assert trained_preset(out).name == record["preset"]
    train_split, val_split = (load_dataset("avdigits", split=s) for s in ("train", "val"))
    scorer = SubnetScorer.of(nets["audio"], train_split, val_split, "audio", bn_batches=2)
    config = nets["audio"].sample_config(1)
    first = scorer.score(config)
    assert 0.0 <= first <= 1.0 and scorer.score(config) == first
    assert scorer.calls == 2 and scorer.seconds_per_score > 0


def test_a_damaged_or_missing_supernet_is_one_clear_error(tmp_path):
    out = tmp_path / "run"
    train("avdigits", out, TrainConfig(**{**TINY.to_dict(), "epochs": 1, "spread_samples": 0}))
    (out / "audio" / "supernet.pt").write_bytes(b"truncated")
    with pytest.raises(HnasError, match="not a loadable checkpoint"):
        load_supernets(out)
    (out / "audio" / "supernet.pt").unlink()
    with pytest.raises(HnasError, match="not found"):
        load_supernets(out)
