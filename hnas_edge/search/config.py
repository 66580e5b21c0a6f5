"""Settings of one search, and the four modes of the paper's ablation (Figure 4)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from hnas_edge.errors import ConfigError
from hnas_edge.search.darts import DartsConfig
from hnas_edge.search.evolution import EvolutionConfig


@dataclass(frozen=True)
class Mode:
    """What the search may change, and whether it optimises hardware cost.

    ``fb``: fixed backbones (each supernet's largest subnet, the hand-picked choice);
    ``ff``: fixed fusion (one cell, one ``ConcatFC`` node over the last embeddings: late fusion);
    without ``hw`` the stage-1 ranking, the elites and the DARTS loss use the error alone.
    """

    name: str
    search_backbones: bool
    search_fusion: bool
    hardware: bool


MODES = {
    "fb-ff": Mode("fb-ff", search_backbones=False, search_fusion=False, hardware=False),
    "fb-sf": Mode("fb-sf", search_backbones=False, search_fusion=True, hardware=False),
    "sb-sf": Mode("sb-sf", search_backbones=True, search_fusion=True, hardware=False),
    "sb-sf-hw": Mode("sb-sf-hw", search_backbones=True, search_fusion=True, hardware=True),
}


def get_mode(name: str) -> Mode:
    try:
        return MODES[name]
    except KeyError:
        raise ConfigError(f"unknown --mode {name!r}; use one of {', '.join(MODES)}") from None


@dataclass(frozen=True)
class Budget:
    """How long stage 2 trains each candidate: DARTS epochs and rates, fine-tune epochs."""

    name: str
    darts_epochs: int
    lr_weights: float
    lr_weights_min: float | None  # cosine annealing to it; None: a flat rate
    lr_arch: float
    finetune_epochs: int

    def apply(self, darts: DartsConfig) -> DartsConfig:
        return replace(
            darts,
            epochs=self.darts_epochs,
            lr_weights=self.lr_weights,
            lr_weights_min=self.lr_weights_min,
            lr_arch=self.lr_arch,
        )

    def overrun_warning(self, darts: DartsConfig) -> str | None:
        """A warning when ``darts`` keeps this flat-rate budget's α/β/γ rate for more epochs than
        the rate was set for; None otherwise.

        Measured (docs/internals.md, "DARTS epochs and the architecture rate"): the small
        budget's 3e-3 over 10 epochs derived all-SE1 fusions 14–16 points below what the same
        candidates reach at 3 epochs, on 3 of 3 candidates; at the paper's rates they did not.
        """
        longer = darts.epochs > self.darts_epochs and darts.lr_arch == self.lr_arch
        if self.lr_weights_min is not None or not longer:
            return None
        return (
            f"{darts.epochs} DARTS epochs at the {self.name} budget's α/β/γ rate "
            f"{self.lr_arch:g}, which is set for {self.darts_epochs}: measured at 10 epochs, it "
            "derived fusions 14–16 points less accurate; for longer searches use --budget paper "
            "--darts-epochs N (its rates) or a lower --lr-arch"
        )


BUDGETS = {
    # minutes per search on a laptop CPU: a few epochs at a flat, larger rate
    "small": Budget("small", 3, 1e-3, None, 3e-3, 3),
    # the paper's §4.1.3: 25 DARTS epochs, Adam, cosine annealing of the rate from 1e-4 to 1e-6;
    # α/β/γ at the authors' 3e-4; the paper reports no fine-tune (its code reports the best test
    # epoch of the supernet instead), ours trains the derived network on train for 10 epochs
    "paper": Budget("paper", 25, 1e-4, 1e-6, 3e-4, 10),
}


def get_budget(name: str) -> Budget:
    try:
        return BUDGETS[name]
    except KeyError:
        raise ConfigError(f"unknown --budget {name!r}; use one of {', '.join(BUDGETS)}") from None


@dataclass(frozen=True)
class SearchConfig:
    """Everything that decides the result of a search (recorded in every output file)."""

    evolution: EvolutionConfig = field(default_factory=EvolutionConfig)
    darts: DartsConfig = field(default_factory=DartsConfig)
    mode: str = "sb-sf-hw"
    finetune_epochs: int = 3  # of the derived (discrete) fusion network, on frozen backbones
    bn_batches: int = 8  # training batches that recalibrate batch norm of every scored subnet
    accounting: str | None = None  # None: the LUT's default (paper for imported tables)
    limit: int | None = None  # use the first N samples of each split only (quick looks, tests)

    def __post_init__(self) -> None:
        get_mode(self.mode)
        evo = self.evolution
        if evo.population < 2 or evo.generations < 1:
            raise ConfigError("give --population ≥ 2 and --generations ≥ 1")
        if not 0 < evo.quartile <= 1:
            raise ConfigError(f"--quartile {evo.quartile}: give a share in (0, 1]")
        for name, p in (("mutation", evo.mutation), ("crossover", evo.crossover)):
            if not 0 <= p <= 1:
                raise ConfigError(f"--{name} {p}: give a probability in [0, 1]")
        if self.darts.epochs < 0 or self.finetune_epochs < 0:
            raise ConfigError("epochs cannot be negative")

    @property
    def run_mode(self) -> Mode:
        return get_mode(self.mode)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (tuples as lists), so a config read back from a file compares equal."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchConfig:
        return cls(
            evolution=EvolutionConfig(**data["evolution"]),
            darts=DartsConfig(**{**data["darts"], "operators": tuple(data["darts"]["operators"])}),
            **{k: v for k, v in data.items() if k not in ("evolution", "darts")},
        )
