"""Device profiles: what runs where, and how it is measured (a shipped name or a user TOML)."""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from hnas_edge.backend.timing import TimingSettings, check_timing
from hnas_edge.checks import Fields
from hnas_edge.errors import ConfigError
from hnas_edge.io import read_toml

RUNTIMES = ("onnxruntime", "torch", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")
METERS = ("jtop", "nvml", "rapl", "estimate")


def shipped_profiles() -> list[str]:
    folder = resources.files("hnas_edge") / "device_profiles"
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


_FIX = "fix the device TOML; shipped ones are in hnas_edge/device_profiles/"
#: Bounds of a device profile's numbers: a typo must not write a LUT `hnas lut show` refuses.
MAX_THREADS = 1024
MAX_POWER_W = 10_000.0
MAX_REFERENCE_EVERY = 100_000


def check_device(data: dict[str, Any], f: Fields) -> None:
    """Every field of a device profile: type, range, allowed names; one line otherwise.

    The name becomes the default LUT file name (``NAME.json``), so it is a plain file name."""
    defaults = {x.name: x.default for x in fields(DeviceProfile) if x.default is not MISSING}
    data = {**defaults, **data}
    f.name(data["name"], "name")
    f.choice(data["runtime"], "runtime", RUNTIMES)
    f.choice(data["precision"], "precision", PRECISIONS)
    f.choice(data["meter"], "meter", METERS)
    f.integer(data["threads"], "threads", ge=1, le=MAX_THREADS)
    f.number(data["nominal_power_w"], "nominal_power_w", gt=0, le=MAX_POWER_W)
    f.optional_text(data["power_mode"], "power_mode")
    f.flag(data["lock_clocks"], "lock_clocks")
    f.flag(data["cuda_graphs"], "cuda_graphs")
    f.flag(data["pin_core"], "pin_core")
    f.integer(data["reference_every"], "reference_every", ge=0, le=MAX_REFERENCE_EVERY)
    if "timing" in data:
        timing = data["timing"]
        check_timing(timing if isinstance(timing, dict) else asdict(timing), f)


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
    #: measure on one core (profile, validate, transfer, deploy --bench), where the OS allows
    pin_core: bool = True
    #: time the drift reference every this many measurements (0: never; docs/luts.md)
    reference_every: int = 8
    timing: TimingSettings = field(default_factory=TimingSettings)

    def __post_init__(self) -> None:
        check_device(asdict(self), Fields(f"device {self.name!r}", _FIX, ConfigError))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str) -> DeviceProfile:
        """A profile from a TOML's table, every field checked against ``source``'s name."""
        f = Fields(f"device profile {source}", _FIX, ConfigError)
        data = dict(data)
        if "name" not in data or "runtime" not in data:
            raise f.line("a device profile needs at least name and runtime")
        known = [x.name for x in fields(cls)]
        f.known(data, known, "")
        timing = f.obj(data.pop("timing", {}), "timing")
        f.known(timing, [x.name for x in fields(TimingSettings)], "timing")
        timing = TimingSettings.filled(timing)
        check_device({**data, "timing": timing}, f)
        return cls(**data, timing=TimingSettings(**timing))

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

    @classmethod
    def with_defaults(cls, recorded: dict[str, Any]) -> dict[str, Any]:
        """A recorded profile (a LUT's ``device.profile``) with the fields it predates at their
        defaults, so that a LUT made before a field existed compares equal to today's."""
        defaults = {x.name: x.default for x in fields(cls) if x.default is not MISSING}
        filled = {**{k: v for k, v in defaults.items() if k not in recorded}, **recorded}
        if isinstance(filled.get("timing"), dict):
            filled["timing"] = TimingSettings.filled(filled["timing"])
        return filled

    def timing_dict(self) -> dict[str, Any]:
        return self.timing.to_dict()

    def runtime_options(self) -> dict[str, Any]:
        return {
            "threads": self.threads,
            "precision": self.precision,
            "cuda_graphs": self.cuda_graphs,
        }
