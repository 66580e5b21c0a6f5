"""Device profiles: what runs where, and how it is measured (a shipped name or a user TOML)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from hnas_edge.errors import ConfigError
from hnas_edge.io import read_toml
from hnas_edge.profiling.runtimes.timing import TimingSettings

RUNTIMES = ("onnxruntime", "torch", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")
METERS = ("jtop", "nvml", "rapl", "estimate")


def shipped_profiles() -> list[str]:
    folder = resources.files("hnas_edge") / "device_profiles"
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    runtime: str
    precision: str = "fp32"
    threads: int = 1
    meter: str = "estimate"
    nominal_power_w: float = 15.0
    power_mode: str | None = None
    lock_clocks: bool = False
    cuda_graphs: bool = False
    timing: TimingSettings = field(default_factory=TimingSettings)

    def __post_init__(self) -> None:
        for name, allowed in (
            ("runtime", RUNTIMES),
            ("precision", PRECISIONS),
            ("meter", METERS),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"device {self.name}: {name} = {getattr(self, name)!r}; "
                    f"use one of {', '.join(allowed)}"
                )
        for flag in ("lock_clocks", "cuda_graphs"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(
                    f"device {self.name}: {flag} = {getattr(self, flag)!r}; use true or false"
                )
        if self.power_mode is not None and not isinstance(self.power_mode, str):
            raise ConfigError(
                f'device {self.name}: power_mode = {self.power_mode!r}; use a name like "MAXN"'
            )
        if not isinstance(self.threads, int) or self.threads < 1:
            raise ConfigError(
                f"device {self.name}: threads = {self.threads!r}; use an integer >= 1"
            )
        if not isinstance(self.nominal_power_w, int | float) or self.nominal_power_w <= 0:
            raise ConfigError(
                f"device {self.name}: nominal_power_w = {self.nominal_power_w!r}; "
                "use a positive number of watts"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str) -> DeviceProfile:
        data = dict(data)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"{source}: unknown field(s) {unknown}; known fields: {', '.join(sorted(known))}"
            )
        if "name" not in data or "runtime" not in data:
            raise ConfigError(f"{source}: a device profile needs at least name and runtime")
        timing = data.pop("timing", {})
        timing_known = {f.name for f in fields(TimingSettings)}
        if not isinstance(timing, dict) or set(timing) - timing_known:
            bad = sorted(set(timing) - timing_known) if isinstance(timing, dict) else timing
            raise ConfigError(
                f"{source}: unknown [timing] field(s) {bad}; "
                f"known: {', '.join(sorted(timing_known))}"
            )
        try:
            return cls(**data, timing=TimingSettings(**timing))
        except TypeError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    @classmethod
    def load(cls, name_or_path: str | Path) -> DeviceProfile:
        """A shipped profile by name (cpu, gpu, agx, tx2, orin) or a TOML file by path."""
        text = str(name_or_path)
        if text.endswith(".toml") or Path(text).is_file():
            return cls.from_dict(read_toml(text, what="device profile"), text)
        if text not in shipped_profiles():
            raise ConfigError(
                f"unknown device {text!r}; use one of {', '.join(shipped_profiles())} "
                "or the path of your own TOML (copy one from hnas_edge/device_profiles/)"
            )
        resource = resources.files("hnas_edge") / "device_profiles" / f"{text}.toml"
        with resources.as_file(resource) as path:
            return cls.from_dict(read_toml(path, what="device profile"), text)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def timing_dict(self) -> dict[str, Any]:
        return self.timing.to_dict()

    def runtime_options(self) -> dict[str, Any]:
        return {
            "threads": self.threads,
            "precision": self.precision,
            "cuda_graphs": self.cuda_graphs,
        }
