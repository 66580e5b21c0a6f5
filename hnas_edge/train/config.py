"""Supernet training settings (the paper's: Adam, lr 1e-3, weight decay 1e-4, cosine schedule,
early stopping on validation)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from hnas_edge.errors import ConfigError


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 12  # both AV-digits supernets in about 4 min on 2 idle cores (--threads 1)
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    n_random: int = 2  # random subnets per step, besides the max and the min (sandwich rule)
    kd_temperature: float = 1.0
    patience: int = 4  # epochs without a better max-subnet validation metric before stopping
    bn_batches: int = 8  # batches for batch-norm recalibration of a subnet
    seed: int = 0
    spread_samples: int = 20  # random subnets scored after training (metric spread)
    limit: int | None = None  # train on the first N samples only (quick looks, tests)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience", "bn_batches"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} = {getattr(self, name)}; it must be at least 1")
        if self.n_random < 0 or self.spread_samples < 0 or self.lr <= 0:
            raise ConfigError("n_random and spread_samples must be >= 0 and lr > 0")

    def to_dict(self) -> dict:
        return asdict(self)
