"""Library functions leave torch's process-wide state as they found it: the global random stream
and the thread count change only inside a block, and calling into the library shifts neither."""

from __future__ import annotations

import pytest
import torch

from hnas_edge.errors import HnasError
from hnas_edge.profiling.device import DeviceProfile
from hnas_edge.profiling.drift import reference_module
from hnas_edge.profiling.measure import Bench
from hnas_edge.search.darts import DartsConfig, FusionSupernet, OperatorCosts, search_fusion
from hnas_edge.space.specs import FUSION_OPS, LinearSpec
from hnas_edge.torch_state import seeded, torch_threads


def torch_state() -> tuple[int, torch.Tensor, int]:
    return torch.initial_seed(), torch.get_rng_state(), torch.get_num_threads()


def assert_unchanged(before: tuple[int, torch.Tensor, int]) -> None:
    seed, stream, threads = torch_state()
    assert seed == before[0]
    assert torch.equal(stream, before[1])
    assert threads == before[2]


@pytest.fixture
def caller_state():
    """The caller's own seeded stream, mid-way, and one thread (other than what runtimes ask)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(1234)
    torch.rand(3)
    yield torch_state()
    torch.set_num_threads(threads)


def test_seeded_draws_what_a_seed_draws_and_gives_the_stream_back(caller_state):
    with seeded(7):
        inside = torch.rand(4)
    torch.manual_seed(7)
    assert torch.equal(inside, torch.rand(4))
    torch.set_rng_state(caller_state[1])
    with seeded(7):
        torch.rand(100)
    assert torch.equal(torch.get_rng_state(), caller_state[1])


def test_seeded_restores_the_stream_even_when_the_block_fails(caller_state):
    with pytest.raises(RuntimeError), seeded(3):
        torch.rand(2)
        raise RuntimeError("inside")
    assert_unchanged(caller_state)


def test_a_thread_count_holds_for_its_block_only(caller_state):
    with torch_threads(2):
        assert torch.get_num_threads() == 2
    with torch_threads(None):
        assert torch.get_num_threads() == 1
    assert_unchanged(caller_state)
    with pytest.raises(HnasError, match="--threads 0: give at least 1"), torch_threads(0):
        pass


def test_profiling_a_part_with_the_torch_runtime_leaves_the_callers_state(caller_state):
    device = DeviceProfile.from_dict(
        {
            "name": "cpu",
            "runtime": "torch",
            "threads": 2,
            "meter": "estimate",
            "nominal_power_w": 10.0,
            "timing": {"warmup_s": 0.0, "min_iters": 3, "min_time_s": 0.0, "retries": 0},
        },
        "test",
    )
    with Bench.open(device) as bench:
        entry = bench.measure_part(LinearSpec(8, 4), seed=5)
    assert entry["latency_ms"]["median"] > 0
    assert_unchanged(caller_state)


def test_the_drift_reference_and_a_darts_search_leave_the_callers_state(caller_state):
    first, _ = reference_module()
    assert_unchanged(caller_state)
    second, _ = reference_module()
    assert torch.equal(first[0].weight, second[0].weight)
    supernet = FusionSupernet([(4,), (4,)], n_classes=2, C=8, L=4, cells=1, nodes=1)
    caller_state = torch_state()
    g = torch.Generator().manual_seed(0)
    features, labels = [torch.randn(64, 4, generator=g) for _ in range(2)], torch.arange(64) % 2
    costs = OperatorCosts(latency={op: 1.0 + i for i, op in enumerate(FUSION_OPS)}, energy=None)
    config = DartsConfig(epochs=1, batch_size=32, hw_weight=0.0, seed=9)
    search_fusion(supernet, (features, labels), (features, labels), "multiclass", costs, config)
    assert_unchanged(caller_state)
