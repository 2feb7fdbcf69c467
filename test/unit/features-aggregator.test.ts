import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BraidError } from '../../src/core/errors.js';
import type { AnySourceEvent, Modality } from '../../src/core/events.js';
import { emptyModalityRecord, type Window } from '../../src/core/window.js';
import {
  AreaDownscaler,
  createFeatureAggregator,
  DEFAULT_FEATURE_CONFIG,
  type FeatureConfig,
  featureLayout,
  fuseWindowFeatures,
  tokenize,
} from '../../src/features/index.js';

const bounds = { streamId: 's', index: 0, start: 0, end: 1_000_000 };
const layout = featureLayout(DEFAULT_FEATURE_CONFIG);

let seq = 0;
const audio = (samples: Int16Array, sampleRate = 16_000, channels = 1): AnySourceEvent => ({
  streamId: 's',
  modality: 'audio',
  time: seq * 20_000,
  seq: seq++,
  payload: { sampleRate, channels, samples },
});
const gray = (
  width: number,
  height: number,
  fill: (i: number) => number,
  bytes = width * height,
): AnySourceEvent => ({
  streamId: 's',
  modality: 'video',
  time: seq * 100_000,
  seq: seq++,
  payload: { format: 'gray', width, height, data: Uint8Array.from({ length: bytes }, (_, i) => fill(i)) },
});
const text = (value: string): AnySourceEvent => ({
  streamId: 's',
  modality: 'text',
  time: seq,
  seq: seq++,
  payload: { text: value },
});
const tone = (n: number, hz: number, amplitude = 8000): Int16Array =>
  Int16Array.from({ length: n }, (_, i) => Math.round(amplitude * Math.sin((2 * Math.PI * hz * i) / 16_000)));

describe('createFeatureAggregator: audio', () => {
  it('counts and skips frames at other rates or channel counts; the window goes on', () => {
    const { aggregator, stats } = createFeatureAggregator(DEFAULT_FEATURE_CONFIG);
    const good = [audio(tone(320, 440)), audio(tone(320, 440))];
    const expected = aggregator.aggregate('audio', good, bounds);
    const mixed = [audio(tone(441, 440), 44_100), good[0]!, audio(tone(640, 440), 16_000, 2), good[1]!];
    expect(aggregator.aggregate('audio', mixed, bounds)).toEqual(expected);
    expect(stats.snapshot()).toEqual({ unsupported_sample_rate: 1, unsupported_channels: 1 });
    expect(stats.lastError('unsupported_sample_rate')?.message).toMatch(/need 16000 Hz .* got 44100 Hz/);
  });

  it('returns an empty array when no frame was usable, so the fused vector marks audio absent', () => {
    const { aggregator, stats } = createFeatureAggregator(DEFAULT_FEATURE_CONFIG);
    expect(aggregator.aggregate('audio', [audio(tone(160, 440), 8_000)], bounds)).toHaveLength(0);
    expect(stats.count('unsupported_sample_rate')).toBe(1);
  });

  it('puts a tone’s energy in the band that holds its frequency', () => {
    const { aggregator } = createFeatureAggregator(DEFAULT_FEATURE_CONFIG);
    const low = aggregator.aggregate('audio', [audio(tone(1600, 300))], bounds);
    const high = aggregator.aggregate('audio', [audio(tone(1600, 3000))], bounds);
    const loudestBand = (f: Float32Array): number =>
      f.subarray(0, 40).indexOf(Math.max(...f.subarray(0, 40)));
    expect(loudestBand(low)).toBeLessThan(loudestBand(high));
    // RMS of a sine of amplitude A/32768 is A/32768/√2 (mean and max over frames).
    expect(low[80]).toBeCloseTo(8000 / 32768 / Math.SQRT2, 3);
    expect(low[81]).toBeCloseTo(8000 / 32768 / Math.SQRT2, 3);
  });

  it('describes only its own window: the same events give the same features whatever came before', () => {
    const { aggregator } = createFeatureAggregator(DEFAULT_FEATURE_CONFIG);
    const window = [audio(tone(800, 1000))];
    const first = aggregator.aggregate('audio', window, bounds);
    aggregator.aggregate('audio', [audio(tone(16_000, 200, 30_000))], bounds);
    expect(aggregator.aggregate('audio', window, bounds)).toEqual(first);
  });
});

describe('createFeatureAggregator: video', () => {
  it('motion energy is the mean abs difference of consecutive frames inside the window only', () => {
    const { aggregator } = createFeatureAggregator(DEFAULT_FEATURE_CONFIG);
    const black = gray(64, 48, () => 0);
    const white = gray(64, 48, () => 255);
    const still = aggregator.aggregate('video', [black], bounds);
    const motion = layout.video - 6 - 7; // the six scalars, then seven motion descriptors
    expect(still[motion]).toBe(0);
    expect(still[motion + 1]).toBe(0);
    // black → white → white: differences 1 and 0.
    const flash = aggregator.aggregate('video', [black, white, white], bounds);
    expect(flash[motion]).toBeCloseTo(0.5, 6);
    expect(flash[motion + 1]).toBeCloseTo(1, 6);
    expect(flash[motion + 2]).toBeCloseTo(2 / 3, 6); // brightness
    expect([...flash.subarray(motion + 3, motion + 6)].map((v) => Number(v.toFixed(6)))).toEqual([
      0.666667, 0.666667, 0.666667,
    ]);
    // A window after a white one still starts from its own first frame: no motion remembered.
    expect(aggregator.aggregate('video', [black], bounds)[motion]).toBe(0);
  });

  it('counts raw frames of the wrong size and undecoded JPEGs, and skips them', () => {
    const { aggregator, stats } = createFeatureAggregator(DEFAULT_FEATURE_CONFIG);
    const ok = gray(64, 48, (i) => i % 256);
    const short = gray(64, 48, () => 1, 100);
    const jpeg: AnySourceEvent = {
      streamId: 's',
      modality: 'video',
      time: 1,
      seq: 99,
      payload: { format: 'jpeg', data: new Uint8Array([0xff, 0xd8]) },
    };
    const features = aggregator.aggregate('video', [short, ok, jpeg], bounds);
    expect(features).toEqual(aggregator.aggregate('video', [ok], bounds));
    expect(stats.snapshot()).toEqual({ bad_video_size: 1, undecoded_image: 1 });
    expect(stats.lastError('bad_video_size')?.message).toBe('raw gray 64x48 frame needs 3072 bytes, got 100');
  });
});

describe('createFeatureAggregator: text and labels', () => {
  it('tokenizes lowercase Unicode words', () => {
    expect(tokenize('Hello, WORLD! snake_case ÉCOLE 日本語 x2')).toEqual([
      'hello',
      'world',
      'snake_case',
      'école',
      '日本語',
      'x2',
    ]);
  });

  it('sums per-event features: counts add up, order of events does not matter', () => {
    const { aggregator } = createFeatureAggregator(DEFAULT_FEATURE_CONFIG);
    const a = text('the cat sat');
    const b = text('on the mat');
    const ab = aggregator.aggregate('text', [a, b], bounds);
    const one = aggregator.aggregate('text', [a], bounds);
    const two = aggregator.aggregate('text', [b], bounds);
    expect(ab).toEqual(Float32Array.from(one, (v, i) => v + two[i]!));
    expect(aggregator.aggregate('text', [b, a], bounds)).toEqual(ab);
    expect(ab[64]).toBeCloseTo(Math.log1p(11) + Math.log1p(10), 5); // texts of 11 and 10 characters
    expect(ab[65]).toBeCloseTo(2 * Math.log1p(3), 5); // three words each
    expect(ab[66]).toBe(2);
  });

  it('truncates text over maxChars and counts it; `skip` drops it instead', () => {
    const config: FeatureConfig = {
      ...DEFAULT_FEATURE_CONFIG,
      text: { ...DEFAULT_FEATURE_CONFIG.text, maxChars: 8 },
    };
    const { aggregator, stats } = createFeatureAggregator(config);
    const long = aggregator.aggregate('text', [text('abcd efgh ijkl')], bounds);
    expect(long).toEqual(aggregator.aggregate('text', [text('abcd efg')], bounds));
    expect(stats.count('text_too_long')).toBe(1);
    const skip = createFeatureAggregator({ ...config, text: { ...config.text, tooLong: 'skip' } });
    expect(skip.aggregator.aggregate('text', [text('abcd efgh ijkl')], bounds)).toHaveLength(0);
    expect(skip.stats.lastError('text_too_long')?.message).toMatch(
      /14 UTF-16 code units exceeds maxChars 8: skipped/,
    );
  });

  it('never splits a surrogate pair when truncating', () => {
    const config: FeatureConfig = {
      ...DEFAULT_FEATURE_CONFIG,
      text: { ...DEFAULT_FEATURE_CONFIG.text, maxChars: 3 },
    };
    const { aggregator } = createFeatureAggregator(config);
    // "ab👍" is 4 code units; 3 would cut the emoji in half, so only "ab" remains.
    expect(aggregator.aggregate('text', [text('ab👍')], bounds)).toEqual(
      aggregator.aggregate('text', [text('ab')], bounds),
    );
  });

  it('gives labels an empty array: they are not features', () => {
    const { aggregator } = createFeatureAggregator(DEFAULT_FEATURE_CONFIG);
    const label: AnySourceEvent = {
      streamId: 's',
      modality: 'label',
      time: 0,
      seq: 0,
      payload: { labels: { a: 1 } },
    };
    expect(aggregator.aggregate('label', [label], bounds)).toHaveLength(0);
  });
});

function windowOf(contents: Partial<Record<Modality, Float32Array>>): Window<Float32Array> {
  const present = emptyModalityRecord(false);
  for (const key of Object.keys(contents) as Modality[]) present[key] = true;
  return {
    ...bounds,
    contents,
    counts: emptyModalityRecord(1),
    present,
    missing: [],
    closedBy: 'watermark',
  };
}

describe('fuseWindowFeatures', () => {
  it('lays out [audio | video | text | mask] with zeros and mask 0 for absent modalities', () => {
    const audioBlock = Float32Array.from({ length: layout.audio }, (_, i) => i + 1);
    const textBlock = Float32Array.from({ length: layout.text }, () => -1);
    const fused = fuseWindowFeatures(
      windowOf({ audio: audioBlock, text: textBlock }),
      DEFAULT_FEATURE_CONFIG,
    );
    expect(fused).toHaveLength(layout.total);
    expect(fused.subarray(0, layout.audio)).toEqual(audioBlock);
    expect(fused.subarray(layout.audio, layout.audio + layout.video).every((v) => v === 0)).toBe(true);
    expect(fused.subarray(layout.audio + layout.video, layout.total - 3)).toEqual(textBlock);
    expect([...fused.subarray(layout.total - 3)]).toEqual([1, 0, 1]);
  });

  it('treats an empty block (no usable frame) as absent', () => {
    const fused = fuseWindowFeatures(windowOf({ video: new Float32Array(0) }), DEFAULT_FEATURE_CONFIG);
    expect([...fused.subarray(layout.total - 3)]).toEqual([0, 0, 0]);
  });

  it('throws BRAID_ERR_FEATURE_MISMATCH for a block of another config', () => {
    const window = windowOf({ audio: new Float32Array(10) });
    expect(() => fuseWindowFeatures(window, DEFAULT_FEATURE_CONFIG)).toThrow(
      expect.objectContaining({ code: 'BRAID_ERR_FEATURE_MISMATCH' }) as BraidError,
    );
    expect(() => fuseWindowFeatures(window, DEFAULT_FEATURE_CONFIG)).toThrow(
      /audio features have 10 values.*needs 100/,
    );
  });

  it('fuses a real aggregator’s output for every modality', () => {
    const { aggregator } = createFeatureAggregator(DEFAULT_FEATURE_CONFIG);
    const fused = fuseWindowFeatures(
      windowOf({
        audio: aggregator.aggregate('audio', [audio(tone(800, 500))], bounds),
        video: aggregator.aggregate('video', [gray(64, 48, (i) => i % 200)], bounds),
        text: aggregator.aggregate('text', [text('hello')], bounds),
        label: aggregator.aggregate('label', [], bounds),
      }),
      DEFAULT_FEATURE_CONFIG,
    );
    expect([...fused.subarray(layout.total - 3)]).toEqual([1, 1, 1]);
    expect(fused.every(Number.isFinite)).toBe(true);
  });
});

describe('properties', () => {
  it('area averaging keeps the mean luma and maps a constant frame to a constant thumbnail', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 16, max: 120 }),
        fc.integer({ min: 12, max: 90 }),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        (width, height, level, seed) => {
          const downscaler = new AreaDownscaler(width, height, 16, 12);
          const thumb = new Float64Array(192);
          downscaler.downscale(new Uint8Array(width * height).fill(level), 'gray', thumb);
          for (const v of thumb) expect(v).toBeCloseTo(level / 255, 9);
          let state = seed;
          const noise = Uint8Array.from(
            { length: width * height },
            () => (state = (state * 48271) % 2147483647) & 255,
          );
          downscaler.downscale(noise, 'gray', thumb);
          const mean = noise.reduce((a, b) => a + b, 0) / noise.length / 255;
          expect(thumb.reduce((a, b) => a + b, 0) / thumb.length).toBeCloseTo(mean, 9);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('audio features of any 16 kHz PCM have the layout length and are finite', () => {
    const { aggregator } = createFeatureAggregator(DEFAULT_FEATURE_CONFIG);
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: -32768, max: 32767 }), { minLength: 1, maxLength: 3000 }),
        (pcm) => {
          const features = aggregator.aggregate('audio', [audio(Int16Array.from(pcm))], bounds);
          expect(features).toHaveLength(layout.audio);
          expect(features.every(Number.isFinite)).toBe(true);
        },
      ),
      { numRuns: 50 },
    );
  });
});
