"""Audio features in numpy alone: WAV reading (stdlib ``wave``) and MFCC.

Kept free of scipy and librosa so that the AV-MNIST wav layout can be featurised at run time with
the package's own dependencies, and so that the AV-digits build script computes exactly the same
features (it imports this module).
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from hnas_edge.errors import HnasError


@dataclass(frozen=True)
class MfccSettings:
    """How a waveform becomes an ``(n_mfcc, n_frames)`` MFCC matrix.

    ``decimate`` keeps every n-th sample before framing without changing ``sample_rate`` for the
    mel scale, which is what the Harmonic-NAS AV-MNIST code does (``wave[::3]`` then MFCC at
    8 kHz). Frames beyond the signal are zero columns; frames beyond ``n_frames`` are dropped.
    """

    sample_rate: int = 8000
    n_fft: int = 512
    hop: int = 400
    n_mels: int = 40
    n_mfcc: int = 20
    n_frames: int = 20
    decimate: int = 1
    center: bool = True
    top_db: float = 80.0


AVDIGITS_MFCC = MfccSettings()
"""AV-digits: 0.95 s clips at 8 kHz, 64 ms windows every 50 ms, so 20 frames span the clip."""

AVMNIST_PAPER_MFCC = MfccSettings(n_fft=2048, hop=512, n_mels=128, decimate=3)
"""Close to the Harmonic-NAS AV-MNIST features (decimate by 3, librosa's default 2048/512 STFT and
128 mel bands). An approximation: not bit-exact to librosa's Slaney mel filters."""


def read_wav(path: str | Path) -> tuple[int, np.ndarray]:
    """Read a PCM WAV file as ``(sample_rate, mono float32 samples in [-1, 1])``."""
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as handle:
            rate, width = handle.getframerate(), handle.getsampwidth()
            channels, raw = handle.getnchannels(), handle.readframes(handle.getnframes())
    except FileNotFoundError:
        raise HnasError(f"audio file not found: {path}; check the dataset folder") from None
    except (wave.Error, EOFError) as exc:
        raise HnasError(f"{path} is not a readable PCM WAV file ({exc}); re-encode it") from None
    if width == 1:
        samples = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width in (2, 4):
        dtype = np.int16 if width == 2 else np.int32
        samples = np.frombuffer(raw, dtype).astype(np.float32) / float(2 ** (8 * width - 1))
    else:
        raise HnasError(f"{path} has {8 * width}-bit samples; re-encode it as 16-bit PCM WAV")
    return rate, samples.reshape(-1, channels).mean(axis=1)


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Triangular filters evenly spaced in mel from 0 Hz to Nyquist, ``(n_mels, bins)``."""
    bins = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(0.0, float(_hz_to_mel(sample_rate / 2.0)), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    bank = np.maximum(0.0, np.minimum(rising, falling))
    return bank * (2.0 / (upper - lower))  # equal area per band, so wide bands are not favoured


@lru_cache(maxsize=8)
def dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Orthonormal DCT-II basis, ``(n_out, n_in)``."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    basis = np.cos(np.pi / n_in * (n + 0.5) * k) * np.sqrt(2.0 / n_in)
    basis[0] /= np.sqrt(2.0)
    return basis


def mfcc(signal: np.ndarray, settings: MfccSettings = AVDIGITS_MFCC) -> np.ndarray:
    """MFCC of a mono signal: ``(n_mfcc, n_frames)`` float32, log-mel power in dB then DCT-II."""
    x = np.asarray(signal, dtype=np.float64)[:: settings.decimate]
    if settings.center:
        x = np.pad(x, settings.n_fft // 2)
    if len(x) < settings.n_fft:
        x = np.pad(x, (0, settings.n_fft - len(x)))
    count = min(1 + (len(x) - settings.n_fft) // settings.hop, settings.n_frames)
    starts = np.arange(count) * settings.hop
    frames = x[starts[:, None] + np.arange(settings.n_fft)[None, :]]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(settings.n_fft) / settings.n_fft)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    bank = mel_filterbank(settings.sample_rate, settings.n_fft, settings.n_mels)
    log_mel = 10.0 * np.log10(np.maximum(power @ bank.T, 1e-10))
    log_mel = np.maximum(log_mel, log_mel.max() - settings.top_db)
    coeffs = dct_matrix(settings.n_mfcc, settings.n_mels) @ log_mel.T
    out = np.zeros((settings.n_mfcc, settings.n_frames), dtype=np.float32)
    out[:, :count] = coeffs
    return out
