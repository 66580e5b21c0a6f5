"""The backbones stage 2 works on, kept per process: each extracted backbone (batch norm
recalibrated for its config) and its fusion candidate features per split, in two LRU caches.
Candidates that share a backbone share its features, so stage 2 computes them once.

The Ray executor shares them across processes: the driver computes a candidate's backbones and
features once (:meth:`BackboneCache.shares`), puts them in the object store, and a worker takes
them (:meth:`BackboneCache.adopt`) instead of computing them; the result is the same. What crosses
travels as CPU tensors; a worker moves them to its own device.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn

from hnas_edge.accelerator import to_cpu
from hnas_edge.search.context import SPLITS, STAGE2_SPLITS, SearchContext
from hnas_edge.search.records import BackboneKey
from hnas_edge.train.evaluation import recalibrate_bn

FEATURE_BATCH = 256  # samples per forward pass when computing features


@dataclass(frozen=True)
class SharedBackbone:
    """A backbone as the driver hands it to a worker: the extracted module and its train/val
    features, on the CPU."""

    key: BackboneKey
    module: nn.Module
    features: Mapping[str, list[torch.Tensor]]


class BackboneCache:
    """The last ``size`` extracted backbones and the features of the last ``size`` × 3 (backbone,
    split) pairs of one process; whatever is missing is computed with ``context``."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._modules: OrderedDict[BackboneKey, nn.Module] = OrderedDict()
        self._features: OrderedDict[tuple[BackboneKey, str], list[torch.Tensor]] = OrderedDict()

    def backbone(
        self, context: SearchContext, modality: str, config: Mapping[str, Any]
    ) -> nn.Module:
        """The static backbone ``config`` with batch norm recalibrated for it."""
        key = BackboneKey.of(modality, config)
        if key not in self._modules:
            net = context.supernets[modality]
            if net.space.elastic:
                net.set_active(config)
                train = context.tensors(modality, "train")
                with context.precision.autocast():
                    recalibrate_bn(net, train, 64, context.config.bn_batches)
                net = net.extract(config).to(context.device)
            self._put_module(key, net.eval())
        return self._modules[key]

    @torch.no_grad()
    def backbone_features(
        self, context: SearchContext, modality: str, config: Mapping[str, Any], split: str
    ) -> list[torch.Tensor]:
        """Every fusion candidate feature of one backbone on ``split``, computed in the
        context's precision and kept in fp32."""
        key = (BackboneKey.of(modality, config), split)
        if key not in self._features:
            module = self.backbone(context, modality, config)
            x = context.tensors(modality, split)
            with context.precision.autocast():
                chunks = [
                    module.forward_features(x[i : i + FEATURE_BATCH])
                    for i in range(0, len(x), FEATURE_BATCH)
                ]
            self._put_features(key, [torch.cat(f).float() for f in zip(*chunks, strict=True)])
        return self._features[key]

    def features(
        self, context: SearchContext, backbones: Mapping[str, Any], split: str
    ) -> list[torch.Tensor]:
        """Every fusion candidate feature of ``split`` in pool order."""
        pool: list[torch.Tensor] = []
        for modality, _ in context.preset.backbones:
            pool += self.backbone_features(context, modality, backbones[modality], split)
        return pool

    def shares(
        self, context: SearchContext, backbones: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, Callable[[], SharedBackbone]]:
        """What stage 2 of a candidate with ``backbones`` needs that other candidates with the
        same backbone need too, by name: per backbone, how to make its :class:`SharedBackbone`."""
        return {
            f"backbone:{BackboneKey.of(m, c).text}": partial(self.shared, context, m, c)
            for m, c in backbones.items()
        }

    def shared(
        self, context: SearchContext, modality: str, config: Mapping[str, Any]
    ) -> SharedBackbone:
        """On the CPU whatever this context's device: a worker may have another (or none)."""
        module = self.backbone(context, modality, config)
        if context.device.type != "cpu":
            module = copy.deepcopy(module).cpu()
        features = {s: self.backbone_features(context, modality, config, s) for s in STAGE2_SPLITS}
        return SharedBackbone(BackboneKey.of(modality, config), module, to_cpu(features))

    def adopt(self, device: torch.device, shared: Mapping[str, SharedBackbone]) -> None:
        """Take backbones and features computed elsewhere instead of computing them here."""
        for value in shared.values():
            self._put_module(value.key, value.module.to(device).eval())
            for split, features in value.features.items():
                on_device = all(f.device == device for f in features)
                # on the CPU the driver's own list is kept: shared, not copied
                self._put_features(
                    (value.key, split), features if on_device else [f.to(device) for f in features]
                )

    def _put_module(self, key: BackboneKey, module: nn.Module) -> None:
        self._modules[key] = module
        _trim(self._modules, self.size)

    def _put_features(self, key: tuple[BackboneKey, str], features: list[torch.Tensor]) -> None:
        self._features[key] = features
        _trim(self._features, self.size * len(SPLITS))


def _trim(cache: OrderedDict, size: int) -> None:
    while len(cache) > size:
        cache.popitem(last=False)
