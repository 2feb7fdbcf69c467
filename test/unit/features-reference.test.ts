import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { AnySourceEvent } from '../../src/core/events.js';
import {
  AUDIO_DESCRIPTORS,
  AUDIO_KERNELS,
  AudioFeaturizer,
  audioDescriptorSize,
  createAudioAnalyser,
  createFeatureAggregator,
  DEFAULT_FEATURE_CONFIG,
  type FeatureConfig,
  fnv1a32,
  logMelFrames,
} from '../../src/features/index.js';
import { DropCounter } from '../../src/sources/drop-counter.js';

// Fixtures come from scripts/make-feature-fixtures.py: numpy (float64) on a real speech clip and seeded frames.
const fixture = (name: string): Buffer =>
  readFileSync(new URL(`../fixtures/features/${name}`, import.meta.url));
const json = <T>(name: string): T => JSON.parse(fixture(name).toString('utf8')) as T;

/** Stated tolerance for log-mel values (natural log units): float64 on both sides, float32 output. */
const LOG_MEL_TOLERANCE = 1e-4;
/** Video and text features are sums/means of bytes: they match to float32 rounding. */
const EXACT_TOLERANCE = 1e-6;

type Aggregates = Record<'mean' | 'max' | 'min' | 'std', number[]>;
interface AudioWindowReference {
  index: number;
  samples: number;
  frames: number;
  mel: Aggregates;
  rms: Aggregates;
  /** flux, flatness, centroid (mean, std each), envelope std, low-energy share, 2–8 Hz modulation share, zcr (mean, std), shape correlation at 50 and 200 ms. */
  descriptors: number[];
}
interface AudioReference {
  samples: number;
  frames: number;
  melBands: number;
  eventSamples: number;
  windowSamples: number;
  windows: AudioWindowReference[];
  short: { samples: number; mel: Aggregates; rms: Aggregates; descriptors: number[] };
}

function maxAbsDifference(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  return worst;
}

function speechPcm(): Int16Array {
  const bytes = fixture('speech-16k.s16le');
  const pcm = new Int16Array(bytes.byteLength / 2);
  for (let i = 0; i < pcm.length; i++) pcm[i] = bytes.readInt16LE(2 * i);
  return pcm;
}

function audioEvents(pcm: Int16Array, eventSamples: number, sampleRate = 16_000): AnySourceEvent[] {
  const events: AnySourceEvent[] = [];
  for (let start = 0, seq = 0; start < pcm.length; start += eventSamples, seq++)
    events.push({
      streamId: 's',
      modality: 'audio',
      time: Math.floor((start * 1e6) / sampleRate),
      seq,
      payload: { sampleRate, channels: 1, samples: pcm.slice(start, start + eventSamples) },
    });
  return events;
}

const ALL_AGGREGATES: FeatureConfig = {
  ...DEFAULT_FEATURE_CONFIG,
  audio: {
    ...DEFAULT_FEATURE_CONFIG.audio,
    melAggregates: ['mean', 'max', 'min', 'std'],
    rmsAggregates: ['mean', 'max', 'min', 'std'],
    // Every descriptor, the default ones and the opt-in segments, in the reference's order.
    descriptors: [...AUDIO_DESCRIPTORS],
  },
};

const expectedAudio = (w: { mel: Aggregates; rms: Aggregates; descriptors: number[] }): number[] => [
  ...w.mel.mean,
  ...w.mel.max,
  ...w.mel.min,
  ...w.mel.std,
  ...w.rms.mean,
  ...w.rms.max,
  ...w.rms.min,
  ...w.rms.std,
  ...w.descriptors,
];

const bounds = { streamId: 's', index: 0, start: 0, end: 1 };

describe.each(AUDIO_KERNELS)(
  'audio features, %s kernel, against the numpy reference (real speech, 16 kHz)',
  (kernel) => {
    const reference = json<AudioReference>('audio-reference.json');
    const pcm = speechPcm();
    const numpyFrames = (): Float32Array => {
      const bytes = fixture('speech-16k.logmel.f32');
      return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    };

    it('log-mel of every frame matches numpy within 1e-4', () => {
      expect(pcm.length).toBe(reference.samples);
      const analyser = createAudioAnalyser(DEFAULT_FEATURE_CONFIG.audio, kernel);
      analyser.reserve(pcm.length).set(pcm);
      const rows = analyser.frameRows(pcm.length);
      const bands = reference.melBands;
      const ours = Float64Array.from({ length: reference.frames * bands }, (_, i) => {
        return rows[Math.floor(i / bands) * (bands + 1) + (i % bands)]!;
      });
      expect(maxAbsDifference(ours, numpyFrames())).toBeLessThan(LOG_MEL_TOLERANCE);
    });

    it('window features (mean, max, min, std of bands and RMS) match numpy per 500 ms window', () => {
      const drops = new DropCounter();
      const featurizer = new AudioFeaturizer(ALL_AGGREGATES.audio, drops, kernel);
      expect(featurizer.kernel).toBe(kernel);
      const events = audioEvents(pcm, reference.eventSamples);
      for (const window of reference.windows) {
        const inWindow = events.filter(
          (e) => Math.floor((e.seq * reference.eventSamples) / reference.windowSamples) === window.index,
        );
        const features = featurizer.featurize(inWindow);
        expect(maxAbsDifference(features, expectedAudio(window))).toBeLessThan(LOG_MEL_TOLERANCE);
      }
      expect(drops.total).toBe(0);
    });

    it('a block shorter than one frame is zero-padded to one frame, as in the reference', () => {
      const featurizer = new AudioFeaturizer(ALL_AGGREGATES.audio, new DropCounter(), kernel);
      const short = audioEvents(pcm.slice(0, reference.short.samples), reference.short.samples);
      const features = featurizer.featurize(short);
      expect(maxAbsDifference(features, expectedAudio(reference.short))).toBeLessThan(LOG_MEL_TOLERANCE);
    });
  },
);

describe('audio features through the aggregator (default kernel)', () => {
  const reference = json<AudioReference>('audio-reference.json');
  const pcm = speechPcm();

  it('logMelFrames (the JavaScript extractor on scaled samples) matches numpy within 1e-4', () => {
    const samples = Float64Array.from(pcm, (x) => x / 32768);
    const ours = logMelFrames(samples, DEFAULT_FEATURE_CONFIG.audio);
    const bytes = fixture('speech-16k.logmel.f32');
    const theirs = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    expect(ours.length).toBe(reference.frames * reference.melBands);
    expect(maxAbsDifference(ours, theirs)).toBeLessThan(LOG_MEL_TOLERANCE);
  });

  it('the default config keeps mean and max of each band, mean and max RMS, then the descriptors', () => {
    const { aggregator } = createFeatureAggregator(DEFAULT_FEATURE_CONFIG);
    const window = reference.windows[2]!;
    const events = audioEvents(pcm, reference.eventSamples).filter(
      (e) => Math.floor((e.seq * reference.eventSamples) / reference.windowSamples) === 2,
    );
    const expected = [
      ...window.mel.mean,
      ...window.mel.max,
      ...window.rms.mean,
      ...window.rms.max,
      // The reference lists every descriptor in the default's order (segments, opt-in, last).
      ...window.descriptors.slice(0, audioDescriptorSize(DEFAULT_FEATURE_CONFIG.audio.descriptors)),
    ];
    expect(maxAbsDifference(aggregator.aggregate('audio', events, bounds), expected)).toBeLessThan(
      LOG_MEL_TOLERANCE,
    );
  });
});

interface VideoWindowReference {
  thumbnailMean: number[];
  thumbnailLast: number[];
  motionMean: number;
  motionMax: number;
  brightness: number;
  rgb: number[];
  /** contrast motion mean, max; residual motion mean, max; global shift mean; coarse motion mean, coarse/fine. */
  descriptors: number[];
}
interface VideoCase {
  width: number;
  height: number;
  frames: number;
  features: VideoWindowReference;
}

describe('video features against the numpy reference (exact area average by pixel replication)', () => {
  const reference = json<{ gray: VideoCase; rgb: VideoCase; pan: VideoCase }>('video-reference.json');
  const bytes = fixture('video-frames.bin');
  const grayBytes = reference.gray.width * reference.gray.height;
  const rgbBytes = reference.rgb.width * reference.rgb.height * 3;
  const frames = (
    format: 'gray' | 'rgb',
    c: VideoCase,
    base: number,
    size: number,
    from: Buffer = bytes,
  ): AnySourceEvent[] =>
    Array.from({ length: c.frames }, (_, i) => ({
      streamId: 's',
      modality: 'video' as const,
      time: i * 100_000,
      seq: i,
      payload: {
        format,
        width: c.width,
        height: c.height,
        data: new Uint8Array(from.subarray(base + i * size, base + (i + 1) * size)),
      },
    }));
  const expected = (f: VideoWindowReference, thumbnail: number[]): number[] => [
    ...thumbnail,
    f.motionMean,
    f.motionMax,
    f.brightness,
    ...f.rgb,
    ...f.descriptors,
  ];
  const withThumbnail = (thumbnail: 'mean' | 'last'): FeatureConfig => ({
    ...DEFAULT_FEATURE_CONFIG,
    video: { ...DEFAULT_FEATURE_CONFIG.video, thumbnail },
  });

  it.each([
    ['gray 64x48 (whole 4× blocks)', 'gray' as const],
    ['rgb 50x37 (fractional overlaps)', 'rgb' as const],
  ])('%s: mean thumbnail, motion, brightness and colour match', (_name, format) => {
    const c = reference[format];
    const base = format === 'gray' ? 0 : grayBytes * reference.gray.frames;
    const events = frames(format, c, base, format === 'gray' ? grayBytes : rgbBytes);
    const { aggregator, stats } = createFeatureAggregator(withThumbnail('mean'));
    const ours = aggregator.aggregate('video', events, bounds);
    expect(maxAbsDifference(ours, expected(c.features, c.features.thumbnailMean))).toBeLessThan(
      EXACT_TOLERANCE,
    );
    const none = createFeatureAggregator(DEFAULT_FEATURE_CONFIG).aggregator.aggregate(
      'video',
      events,
      bounds,
    );
    expect(maxAbsDifference(none, expected(c.features, []))).toBeLessThan(EXACT_TOLERANCE);
    const last = createFeatureAggregator(withThumbnail('last'));
    const lastOurs = last.aggregator.aggregate('video', events, bounds);
    expect(maxAbsDifference(lastOurs, expected(c.features, c.features.thumbnailLast))).toBeLessThan(
      EXACT_TOLERANCE,
    );
    expect(stats.total).toBe(0);
  });

  it('a camera panning over a still scene: its motion is all global shift, no residual', () => {
    const c = reference.pan;
    const size = c.width * c.height;
    const events = frames('gray', c, 0, size, fixture('video-pan.bin'));
    const ours = createFeatureAggregator(DEFAULT_FEATURE_CONFIG).aggregator.aggregate(
      'video',
      events,
      bounds,
    );
    expect(maxAbsDifference(ours, expected(c.features, []))).toBeLessThan(EXACT_TOLERANCE);
    const [contrastMotion, , residual, , shift] = c.features.descriptors;
    expect(contrastMotion).toBeGreaterThan(0.1);
    expect(residual).toBe(0);
    expect(shift).toBe(1);
  });
});

interface TextReference {
  fnv1a32: { text: string; hash: number }[];
  window: { texts: string[]; hashDim: number; features: number[] };
}

describe('text features against the python reference', () => {
  const reference = json<TextReference>('text-reference.json');

  it('FNV-1a 32-bit over UTF-8 matches python for ASCII, accents, CJK and astral characters', () => {
    for (const { text, hash } of reference.fnv1a32) expect(fnv1a32(text), text).toBe(hash);
  });

  it('a window sums hashed unigrams, bigrams and length features over its events', () => {
    const events: AnySourceEvent[] = reference.window.texts.map((text, i) => ({
      streamId: 's',
      modality: 'text',
      time: i,
      seq: i,
      payload: { text },
    }));
    const { aggregator } = createFeatureAggregator(DEFAULT_FEATURE_CONFIG);
    const ours = aggregator.aggregate('text', events, bounds);
    expect(maxAbsDifference(ours, reference.window.features)).toBeLessThan(EXACT_TOLERANCE);
  });
});
