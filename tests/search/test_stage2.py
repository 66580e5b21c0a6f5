"""Stage 2 after DARTS: the derived network inherits what the search trained, and the fine-tune
keeps its best validation epoch."""

from __future__ import annotations

import torch
from conftest import PRESET

from hnas_edge.search.darts import FusionSupernet
from hnas_edge.space.mmnn import MultimodalArch, build_fresh, candidates
from hnas_edge.train.fused import fit_fusion, metric_on_features


def derived(cells: int = 1, nodes: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    supernet = FusionSupernet.of(PRESET, cells, nodes)
    with torch.no_grad():
        for gamma in supernet.relaxed.gamma:
            gamma.normal_()  # a definite choice of operators, not the near-uniform start
    genotype = supernet.relaxed.derive()
    configs = {m: space.max_config() for m, space in PRESET.backbones}
    arch = MultimodalArch(PRESET.name, configs, cells, nodes, genotype)
    return supernet, build_fresh(PRESET, arch)


def test_the_derived_network_starts_from_the_weights_darts_trained():
    supernet, net = derived()
    assert not torch.equal(net.head.linear.weight, supernet.head.weight)
    supernet.hand_down(net)
    for i in net.used:
        for name, value in supernet.adapters[i].state_dict().items():
            assert torch.equal(net.adapters[str(i)].state_dict()[name], value)
    relaxed = supernet.relaxed
    for p, cell in enumerate(net.fusion.genotype.cells):
        for d, node in enumerate(cell.nodes):
            chosen = relaxed.mixed[p * relaxed.n_nodes + d].ops[relaxed.operators.index(node.op)]
            for name, value in chosen.state_dict().items():
                assert torch.equal(net.fusion.ops[p][d].state_dict()[name], value)
    assert torch.equal(net.head.linear.weight, supernet.head.weight)
    assert torch.equal(net.head.linear.bias, supernet.head.bias)


def features_of(net, n: int, seed: int):
    """Random candidate features in which the label lifts one channel (learnable through any
    adapter's 1×1 convolution)."""
    g = torch.Generator().manual_seed(seed)
    pool = candidates(PRESET)
    labels = torch.randint(0, 10, (n,), generator=g)
    features = {}
    for i in net.used:
        x = torch.randn(n, *pool[i].shape, generator=g)
        x[torch.arange(n), labels % pool[i].shape[0]] += 3.0
        features[i] = x
    return features, labels


def test_the_fine_tune_keeps_its_best_validation_epoch():
    _, net = derived(1, 1, seed=1)
    train, val = features_of(net, 256, seed=0), features_of(net, 128, seed=1)
    fit_fusion(net, *train, epochs=4, task="multiclass", seed=0)
    trained = metric_on_features(net, *val, "multiclass")
    assert trained > 0.5  # far above chance (0.1): the task is learnable

    state = {k: v.clone() for k, v in net.state_dict().items()}
    # a rate this large wrecks the weights; the validation split must catch it
    fit_fusion(net, *train, epochs=2, task="multiclass", lr=50.0, seed=0, val=val)
    assert metric_on_features(net, *val, "multiclass") == trained
    net.load_state_dict(state)
    fit_fusion(net, *train, epochs=2, task="multiclass", lr=50.0, seed=0)
    assert metric_on_features(net, *val, "multiclass") < trained


def test_stage2_knows_which_modality_each_feature_comes_from():
    supernet = FusionSupernet.of(PRESET, 1, 1)
    assert supernet.sources == [c.modality for c in candidates(PRESET)]
    assert set(supernet.sources) == set(PRESET.modalities)
    reads = {supernet.sources[i] for i in supernet.derive().used_inputs()}
    assert reads == set(PRESET.modalities)
