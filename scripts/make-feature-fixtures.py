#!/usr/bin/env python3
"""Independent numpy references for braid's features (test/unit/features-reference.test.ts).

Writes into test/fixtures/features/:
  speech-16k.s16le        a real speech clip (asterisk "conf-onlyperson", 8 kHz) resampled to 16 kHz mono PCM16
                          by ffmpeg's resampler — the same path braid's audio sources take;
  speech-16k.logmel.f32   numpy log-mel of every analysis frame of the clip (frames x 40, float32 little-endian);
  audio-reference.json    window features of the clip (all four aggregates) and of a block shorter than a frame;
  video-frames.bin        deterministic raw frames (gray 64x48 and rgb 50x37) made here with a seeded generator;
  video-pan.bin           five gray 64x48 frames of a smooth scene panning by 4 pixels a frame;
  video-reference.json    their window features, with the thumbnail made by exact area averaging (pixel replication
                          to a common multiple of the sizes, then block means) instead of braid's overlap weights;
  text-reference.json     FNV-1a 32-bit hashes of UTF-8 strings and a window's hashed text features.

numpy only (plus ffmpeg, once, to resample the clip). Rerun after changing a feature definition:
  python3 scripts/make-feature-fixtures.py
"""

import json
import math
import os
import re
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "fixtures", "features")
CLIP = "/usr/share/asterisk/sounds/en/conf-onlyperson.wav"

SR = 16000
FRAME = 400
HOP = 160
NFFT = 512
BANDS = 40
FMIN = 0.0
FMAX = 8000.0
EPS = 1e-6
EVENT_SAMPLES = 320  # 20 ms events, as braid's audio sources emit
WINDOW_SAMPLES = 8000  # 500 ms windows


def speech_samples():
    path = os.path.join(OUT, "speech-16k.s16le")
    if not os.path.exists(path):
        subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-i", CLIP, "-ac", "1", "-ar", str(SR), "-f", "s16le",
             "-acodec", "pcm_s16le", path],
            check=True,
        )
    return np.fromfile(path, dtype="<i2")


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + f / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_matrix():
    edges = mel_to_hz(np.linspace(hz_to_mel(FMIN), hz_to_mel(FMAX), BANDS + 2))
    freqs = np.arange(NFFT // 2 + 1) * SR / NFFT
    lower = (freqs[None, :] - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None]
    upper = (edges[2:, None] - freqs[None, :]) / (edges[2:] - edges[1:-1])[:, None]
    return np.maximum(0.0, np.minimum(lower, upper))


def frames_of(x):
    if len(x) < FRAME:
        x = np.concatenate([x, np.zeros(FRAME - len(x))])
    count = (len(x) - FRAME) // HOP + 1
    index = np.arange(FRAME)[None, :] + HOP * np.arange(count)[:, None]
    return x[index]


def log_mel_and_rms(x):
    frames = frames_of(x)
    n = np.arange(FRAME)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / FRAME)  # periodic Hann
    power = np.abs(np.fft.rfft(frames * window, n=NFFT, axis=1)) ** 2
    log_mel = np.log(power @ mel_matrix().T + EPS)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    return log_mel, rms


def aggregates(values):
    return {
        "mean": values.mean(axis=0).tolist(),
        "max": values.max(axis=0).tolist(),
        "min": values.min(axis=0).tolist(),
        "std": values.std(axis=0).tolist(),
    }


def audio_descriptors(log_mel, x):
    """flux, flatness, centroid, envelope, zcr, stationarity, harmonicity, segments (src/features/audio-descriptors.ts) of a block x and its log-mel."""
    frames, bands = log_mel.shape
    power = np.exp(log_mel)
    flux = np.maximum(np.diff(log_mel, axis=0), 0).mean(axis=1) if frames > 1 else np.zeros(0)
    flatness = log_mel.mean(axis=1) - np.log(power.mean(axis=1))
    centroid = (power * np.arange(bands)).sum(axis=1) / power.sum(axis=1) / (bands - 1)
    energy = np.log(power.sum(axis=1))
    low = float(np.mean(energy < np.log(0.25 * np.exp(energy).mean())))
    modulation = 0.0
    if frames >= 4:
        spectrum = np.abs(np.fft.fft(energy - energy.mean())) ** 2
        k = np.arange(1, frames // 2 + 1)
        hz = k * (SR / HOP) / frames
        total = spectrum[k].sum()
        modulation = float(spectrum[k][(hz >= 2) & (hz <= 8)].sum() / total) if total > 0 else 0.0
    signs = frames_of(x) < 0
    zcr = (signs[:, 1:] != signs[:, :-1]).sum(axis=1) / (FRAME - 1)
    ms = lambda v: [float(v.mean()), float(v.std())] if len(v) else [0.0, 0.0]
    def shape_correlation(lag):
        if frames <= lag:
            return 0.0
        a = log_mel[:-lag] - log_mel[:-lag].mean(axis=1, keepdims=True)
        b = log_mel[lag:] - log_mel[lag:].mean(axis=1, keepdims=True)
        aa, bb = (a * a).sum(axis=1), (b * b).sum(axis=1)
        r = np.where((aa > 0) & (bb > 0), (a * b).sum(axis=1) / np.sqrt(np.maximum(aa * bb, 1e-300)), 0.0)
        return float(r.mean())

    return (ms(flux) + ms(flatness) + ms(centroid) + [float(energy.std()), low, modulation] + ms(zcr)
            + [shape_correlation(5), shape_correlation(20)] + harmonicity(x)
            + segments(energy, flatness, centroid))


def segments(energy, flatness, centroid, count=4):
    """segments (src/features/audio-descriptors.ts): per quarter of the frames, mean ln energy, flatness, centroid."""
    n = len(energy)
    out = []
    for k in range(count):
        lo = (k * n) // count
        hi = max(((k + 1) * n) // count, lo + 1)
        out += [float(v[lo:hi].mean()) if n else 0.0 for v in (energy, flatness, centroid)]
    return out


def harmonicity(x, q=8, low_hz=80, high_hz=500, voiced_at=0.7):
    """harmonicity mean/std, voiced share, voicing changes, pitch glide (src/features/audio-descriptors.ts)."""
    n = FRAME // q
    frames = len(frames_of(x))
    first = [(f * HOP) // q for f in range(frames)]
    padded = np.concatenate([x, np.zeros((first[-1] + n) * q)])[: (first[-1] + n) * q]
    signal = padded.reshape(-1, q).mean(axis=1)
    decimated = [signal[s : s + n] for s in first]
    rate = SR / q
    lags = np.arange(int(math.ceil(rate / high_hz)), min(int(rate // low_hz), n - 2) + 1)
    peaks, best_lags = [], []
    for d in decimated:
        r = np.zeros(len(lags))
        for i, lag in enumerate(lags):
            head, tail = d[: n - lag], d[lag:]
            energy = (head @ head) * (tail @ tail)
            r[i] = (head @ tail) / np.sqrt(energy) if (head @ head) > 0 and (tail @ tail) > 0 else 0.0
        k = int(np.argmax(r))
        peaks.append(max(float(r[k]), 0.0))
        best_lags.append(int(lags[k]) if r[k] > 0 else 0)
    peaks, best_lags = np.array(peaks), np.array(best_lags, dtype=np.float64)
    voiced = peaks >= voiced_at
    both = voiced[1:] & voiced[:-1]
    glide = np.minimum(np.abs(np.log2(best_lags[1:][both] / best_lags[:-1][both])), 1)
    return [float(peaks.mean()), float(peaks.std()), float(voiced.mean()),
            float(np.mean(voiced[1:] != voiced[:-1])) if len(peaks) > 1 else 0.0,
            float(glide.mean()) if both.any() else 0.0]


def audio_reference():
    pcm = speech_samples()
    x = pcm.astype(np.float64) / 32768.0
    log_mel, _ = log_mel_and_rms(x)
    log_mel.astype("<f4").tofile(os.path.join(OUT, "speech-16k.logmel.f32"))
    windows = []
    # Events are whole 320-sample chunks; an event belongs to the window holding its first sample.
    event_starts = np.arange(0, len(pcm), EVENT_SAMPLES)
    for w in range(int(math.ceil(len(pcm) / WINDOW_SAMPLES))):
        starts = event_starts[(event_starts // WINDOW_SAMPLES) == w]
        block = np.concatenate([x[s : s + EVENT_SAMPLES] for s in starts])
        mel, rms = log_mel_and_rms(block)
        windows.append({"index": w, "samples": len(block), "frames": len(mel),
                        "mel": aggregates(mel), "rms": aggregates(rms[:, None]),
                        "descriptors": audio_descriptors(mel, block)})
    short = x[:200]
    mel, rms = log_mel_and_rms(short)
    return {
        "clip": os.path.basename(CLIP),
        "sampleRate": SR, "frameLength": FRAME, "hopLength": HOP, "fftSize": NFFT, "melBands": BANDS,
        "fMin": FMIN, "fMax": FMAX, "logEps": EPS,
        "eventSamples": EVENT_SAMPLES, "windowSamples": WINDOW_SAMPLES,
        "samples": len(pcm), "frames": len(log_mel),
        "windows": windows,
        "short": {"samples": len(short), "mel": aggregates(mel), "rms": aggregates(rms[:, None]),
                  "descriptors": audio_descriptors(mel, short)},
    }


def area_average(img, out_w, out_h):
    """Exact area average: replicate pixels up to a common multiple of both sizes, then take block means."""
    h, w = img.shape
    lw = w * out_w // math.gcd(w, out_w)
    lh = h * out_h // math.gcd(h, out_h)
    big = np.repeat(np.repeat(img, lh // h, axis=0), lw // w, axis=1)
    return big.reshape(out_h, lh // out_h, out_w, lw // out_w).mean(axis=(1, 3))


def video_descriptors(thumbs, max_shift=2, floor=0.01):
    """contrast-motion, global-motion (src/features/video-descriptors.ts) over consecutive thumbnail pairs."""
    h, w = thumbs.shape[1:]
    contrast_motion, residual, shifts, coarse = [], [], [], []
    by, bx = (2 if h > 1 else 1), (2 if w > 1 else 1)
    blocks = lambda t: t[: (h // by) * by, : (w // bx) * bx].reshape(h // by, by, w // bx, bx).mean(axis=(1, 3))
    for prev, cur in zip(thumbs[:-1], thumbs[1:]):
        contrast = math.sqrt((prev.var() + cur.var()) / 2) + floor
        best, best_shift = None, 0.0
        # Shift (0, 0) first, then dy, dx in increasing order; only a strictly smaller difference replaces the best.
        order = [(0, 0)] + [(dy, dx) for dy in range(-max_shift, max_shift + 1)
                            for dx in range(-max_shift, max_shift + 1) if (dy, dx) != (0, 0)]
        for dy, dx in order:
            ys, xs = slice(max(0, -dy), min(h, h - dy)), slice(max(0, -dx), min(w, w - dx))
            yc, xc = slice(ys.start + dy, ys.stop + dy), slice(xs.start + dx, xs.stop + dx)
            d = np.abs(cur[yc, xc] - prev[ys, xs]).mean()
            if (dy, dx) == (0, 0):
                still = d
            if best is None or d < best:
                best, best_shift = d, math.hypot(dx, dy)
        contrast_motion.append(still / contrast)
        coarse.append(np.abs(blocks(cur) - blocks(prev)).mean() / contrast)
        residual.append(best / contrast)
        shifts.append(best_shift)
    if not shifts:
        return [0.0] * 7
    fine = float(np.sum(contrast_motion))
    return [float(np.mean(contrast_motion)), float(np.max(contrast_motion)),
            float(np.mean(residual)), float(np.max(residual)), float(np.mean(shifts)),
            float(np.mean(coarse)), float(np.sum(coarse)) / fine if fine > 0 else 0.0]


def video_window(frames, fmt):
    thumbs, rgb = [], []
    for f in frames:
        f = f.astype(np.float64)
        if fmt == "rgb":
            luma = 0.299 * f[:, :, 0] + 0.587 * f[:, :, 1] + 0.114 * f[:, :, 2]
            rgb.append(f.reshape(-1, 3).mean(axis=0) / 255.0)
        else:
            luma = f
            rgb.append(np.repeat(f.mean() / 255.0, 3))
        thumbs.append(area_average(luma / 255.0, 16, 12))
    thumbs = np.array(thumbs)
    diffs = [np.abs(thumbs[i] - thumbs[i - 1]).mean() for i in range(1, len(thumbs))] or [0.0]
    mean_thumb = thumbs.mean(axis=0)
    return {
        "thumbnailMean": mean_thumb.ravel().tolist(),
        "thumbnailLast": thumbs[-1].ravel().tolist(),
        "motionMean": float(np.mean(diffs)),
        "motionMax": float(np.max(diffs)),
        "brightness": float(mean_thumb.mean()),
        "rgb": np.mean(rgb, axis=0).tolist(),
        "descriptors": video_descriptors(thumbs),
    }


def video_reference():
    rng = np.random.default_rng(20240611)
    gray = rng.integers(0, 256, size=(3, 48, 64), dtype=np.uint8)
    rgb = rng.integers(0, 256, size=(3, 37, 50, 3), dtype=np.uint8)
    with open(os.path.join(OUT, "video-frames.bin"), "wb") as fh:
        fh.write(gray.tobytes())
        fh.write(rgb.tobytes())
    # A camera panning right over a smooth scene, 4 pixels (one thumbnail pixel) a frame, darkened and low in contrast.
    yy, xx = np.mgrid[0:48, 0:96]
    scene = 128 + 60 * np.sin(xx / 7.0) * np.cos(yy / 5.0) + 30 * np.sin((xx + 2 * yy) / 11.0)
    pan = np.stack([(0.4 * scene[:, 4 * i : 4 * i + 64] + 20).astype(np.uint8) for i in range(5)])
    with open(os.path.join(OUT, "video-pan.bin"), "wb") as fh:
        fh.write(pan.tobytes())
    return {
        "pan": {"width": 64, "height": 48, "frames": 5, "features": video_window(pan, "gray")},
        "gray": {"width": 64, "height": 48, "frames": 3, "features": video_window(gray, "gray")},
        "rgb": {"width": 50, "height": 37, "frames": 3, "features": video_window(rgb, "rgb")},
    }


def fnv1a32(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def text_features(texts, dim=64):
    vec = np.zeros(dim + 3)
    for text in texts:
        words = re.findall(r"\w+", text.lower())
        grams = words + [a + " " + b for a, b in zip(words, words[1:])]
        for g in grams:
            h = fnv1a32(g.encode("utf-8"))
            vec[h % dim] += -1.0 if h >> 31 else 1.0
        vec[dim] += math.log1p(len(text))
        vec[dim + 1] += math.log1p(len(words))
        vec[dim + 2] += 1.0
    return vec.tolist()


def text_reference():
    strings = ["", "a", "hello", "foobar", "naïve café", "日本語のテキスト", "thumbs 👍 up", "hello world"]
    texts = ["Hello, World! Hello again.", "The quick brown fox — jumps over 2 lazy dogs", "Ünïcödé wörds ÄND 日本語"]
    return {
        "fnv1a32": [{"text": s, "hash": fnv1a32(s.encode("utf-8"))} for s in strings],
        "window": {"texts": texts, "hashDim": 64, "features": text_features(texts)},
    }


def write_json(name, value):
    with open(os.path.join(OUT, name), "w") as fh:
        json.dump(value, fh, indent=None, separators=(",", ":"))
        fh.write("\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    write_json("audio-reference.json", audio_reference())
    write_json("video-reference.json", video_reference())
    write_json("text-reference.json", text_reference())
    print(f"wrote fixtures to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
