"""WAV reading and MFCC in numpy: the features AV-digits and the AV-MNIST wav layout use."""

import wave

import numpy as np
import pytest

from hnas_edge.data.audio import AVDIGITS_MFCC, AVMNIST_PAPER_MFCC, mfcc, read_wav
from hnas_edge.errors import HnasError


def write_wav(path, samples, rate=8000, channels=1):
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(pcm.tobytes())


def tone(freq, seconds=0.5, rate=8000):
    t = np.arange(int(seconds * rate)) / rate
    return 0.5 * np.sin(2 * np.pi * freq * t)


def test_read_wav_returns_rate_and_mono_samples_in_unit_range(tmp_path):
    write_wav(tmp_path / "a.wav", tone(440))
    rate, samples = read_wav(tmp_path / "a.wav")
    assert rate == 8000 and samples.dtype == np.float32
    assert np.allclose(samples, tone(440), atol=1e-4)


def test_stereo_wav_is_averaged_to_mono(tmp_path):
    left, right = tone(440, 0.1), np.zeros(800)
    write_wav(tmp_path / "s.wav", np.stack([left, right], axis=1).ravel(), channels=2)
    _, samples = read_wav(tmp_path / "s.wav")
    assert np.allclose(samples, left / 2, atol=1e-4)


def test_unreadable_or_missing_wav_is_a_one_line_error(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"not a wav")
    with pytest.raises(HnasError, match="not a readable PCM WAV"):
        read_wav(tmp_path / "bad.wav")
    with pytest.raises(HnasError, match="audio file not found"):
        read_wav(tmp_path / "missing.wav")


def test_mfcc_is_20_by_20_and_different_sounds_differ():
    low, high = mfcc(tone(300, 0.95)), mfcc(tone(2500, 0.95))
    assert low.shape == (20, 20) and low.dtype == np.float32
    assert np.abs(low - high)[1:].mean() > 1.0


def test_frames_past_the_end_of_a_short_signal_are_zero():
    out = mfcc(tone(500, 0.1))  # 800 samples: 3 frames of 400
    assert np.any(out[:, :3] != 0) and np.all(out[:, 3:] == 0)


def test_paper_settings_decimate_so_an_utterance_fills_only_the_first_frames():
    out = mfcc(tone(300, 0.5), AVMNIST_PAPER_MFCC)  # 4000 / 3 samples, hop 512
    assert out.shape == (20, 20)
    assert np.all(out[:, 4:] == 0) and np.any(out[:, :3] != 0)
    assert AVDIGITS_MFCC.n_frames == AVMNIST_PAPER_MFCC.n_frames == 20
