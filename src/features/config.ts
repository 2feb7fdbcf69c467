import { z } from 'zod';
import { BraidError, InvalidOptionError } from '../core/errors.js';
import { jsonDifferences } from '../core/json-diff.js';
import { AUDIO_DESCRIPTORS, type AudioDescriptor, audioDescriptorSize } from './audio-descriptors.js';
import { VIDEO_DESCRIPTORS, type VideoDescriptor, videoDescriptorSize } from './video-descriptors.js';

/** How the per-frame values of a window are folded into the window's features (population std). */
export const FRAME_AGGREGATES = ['mean', 'max', 'min', 'std'] as const;
export type FrameAggregate = (typeof FRAME_AGGREGATES)[number];

/** Audio: log-mel filterbank plus RMS energy over frames of the window's own samples (see docs/features.md). */
export interface AudioFeatureConfig {
  /** The only rate accepted; other rates are dropped as `unsupported_sample_rate` (sources resample with ffmpeg). */
  readonly sampleRate: number;
  /** Analysis frame in samples (400 = 25 ms at 16 kHz). */
  readonly frameLength: number;
  /** Distance between frame starts in samples (160 = 10 ms at 16 kHz). */
  readonly hopLength: number;
  /** FFT length, a power of two ≥ frameLength; the windowed frame is zero-padded to it. */
  readonly fftSize: number;
  readonly melBands: number;
  readonly fMin: number;
  readonly fMax: number;
  /** HTK mel scale, 2595·log10(1 + f/700); triangles with peak 1 (no area normalisation). */
  readonly melScale: 'htk';
  /** Periodic Hann of frameLength samples. */
  readonly window: 'hann-periodic';
  /** Features are log(mel power + logEps), with samples scaled to [-1, 1). */
  readonly logEps: number;
  /** How each log-mel band is aggregated over the window's frames, in this order. */
  readonly melAggregates: readonly FrameAggregate[];
  /** How per-frame RMS energy is aggregated over the window's frames, in this order. */
  readonly rmsAggregates: readonly FrameAggregate[];
  /**
   * Descriptors of the window's frames written after the RMS aggregates (audio-descriptors.ts): spectral flux,
   * flatness, centroid, the energy envelope's dynamics and 2–8 Hz modulation. Absent in models saved before them.
   */
  readonly descriptors?: readonly AudioDescriptor[];
}

export interface VideoFeatureConfig {
  /** Grayscale thumbnail size every frame is area-averaged down to. */
  readonly thumbWidth: number;
  readonly thumbHeight: number;
  /**
   * The window's thumbnail in the features: the mean over its frames, its last frame, or `none` (motion is still
   * measured on the thumbnail grid; only the picture itself is left out, so a model cannot learn what clips look like).
   */
  readonly thumbnail: 'mean' | 'last' | 'none';
  /**
   * Motion descriptors written after the six scalars (video-descriptors.ts): motion relative to the frames' contrast,
   * and what is left of it once the best global shift (a panning camera) is taken out. Absent in older models.
   */
  readonly descriptors?: readonly VideoDescriptor[];
}

export interface TextFeatureConfig {
  /** Signed feature-hashing dimension for word n-grams. */
  readonly hashDim: number;
  /** Longest n-gram hashed: 1 (unigrams) or 2 (unigrams and bigrams). */
  readonly maxNgram: 1 | 2;
  readonly hash: 'fnv1a32';
  /** Longer texts are counted as `text_too_long` and truncated to this many UTF-16 code units, or skipped. */
  readonly maxChars: number;
  readonly tooLong: 'truncate' | 'skip';
}

/** Every dimension and parameter of braid's features. It is saved with a model and checked on load. */
export interface FeatureConfig {
  readonly version: 1;
  readonly audio: AudioFeatureConfig;
  readonly video: VideoFeatureConfig;
  readonly text: TextFeatureConfig;
}

export const DEFAULT_FEATURE_CONFIG: FeatureConfig = {
  version: 1,
  audio: {
    sampleRate: 16_000,
    frameLength: 400,
    hopLength: 160,
    fftSize: 512,
    melBands: 40,
    fMin: 0,
    fMax: 8_000,
    melScale: 'htk',
    window: 'hann-periodic',
    logEps: 1e-6,
    melAggregates: ['mean', 'max'],
    rmsAggregates: ['mean', 'max'],
    // Harmonicity is in since the bundled model of 2026-12-03 (720 sessions): models with it ranked speech above the
    // held-out distractors better at five of six seeds over 120, 360 and 720 training sessions (docs/model.md), for
    // ~1.5 µs per frame. Segments are not: they moved recall by less than the seed did.
    descriptors: ['flux', 'flatness', 'centroid', 'envelope', 'zcr', 'stationarity', 'harmonicity'],
  },
  video: { thumbWidth: 16, thumbHeight: 12, thumbnail: 'none', descriptors: [...VIDEO_DESCRIPTORS] },
  text: { hashDim: 64, maxNgram: 2, hash: 'fnv1a32', maxChars: 4_096, tooLong: 'truncate' },
};

/** Number of video scalars besides the thumbnail: motion mean, motion max, brightness, r, g, b. */
export const VIDEO_EXTRA_FEATURES = 6;
/** Number of text scalars besides the hashed n-grams: log1p(chars), log1p(words), event count. */
export const TEXT_EXTRA_FEATURES = 3;
/** Presence mask width: audio, video, text. */
export const MASK_FEATURES = 3;

export interface FeatureLayout {
  readonly audio: number;
  readonly video: number;
  readonly text: number;
  readonly mask: typeof MASK_FEATURES;
  /** Length of the fused vector [audio | video | text | mask]. */
  readonly total: number;
}

export function featureLayout(config: FeatureConfig): FeatureLayout {
  const a = config.audio;
  const audio = audioFeatureSize(a);
  const video = videoFeatureSize(config.video);
  const text = config.text.hashDim + TEXT_EXTRA_FEATURES;
  return { audio, video, text, mask: MASK_FEATURES, total: audio + video + text + MASK_FEATURES };
}

export function audioFeatureSize(a: AudioFeatureConfig): number {
  return a.melBands * a.melAggregates.length + a.rmsAggregates.length + audioDescriptorSize(a.descriptors);
}

export function videoFeatureSize(v: VideoFeatureConfig): number {
  const thumbnail = v.thumbnail === 'none' ? 0 : v.thumbWidth * v.thumbHeight;
  return thumbnail + VIDEO_EXTRA_FEATURES + videoDescriptorSize(v.descriptors);
}

/** A list of distinct names, each at most once (order is the layout's order). */
const descriptorList = <T extends string>(names: readonly [T, ...T[]]) =>
  z
    .array(z.enum(names))
    .max(names.length)
    .refine((list) => new Set(list).size === list.length, 'must not repeat a descriptor')
    .optional();

const positiveInt = (max: number) => z.number().int().min(1).max(max);
const aggregates = z.array(z.enum(FRAME_AGGREGATES)).min(1).max(FRAME_AGGREGATES.length);

const audioSchema = z
  .object({
    sampleRate: z.number().int().min(8_000).max(48_000),
    frameLength: positiveInt(1 << 16),
    hopLength: positiveInt(1 << 16),
    fftSize: positiveInt(1 << 16).refine((n) => n >= 4 && (n & (n - 1)) === 0, 'must be a power of two ≥ 4'),
    melBands: positiveInt(512),
    fMin: z.number().min(0),
    fMax: z.number().positive(),
    melScale: z.literal('htk'),
    window: z.literal('hann-periodic'),
    logEps: z.number().positive(),
    melAggregates: aggregates,
    rmsAggregates: aggregates,
    descriptors: descriptorList(AUDIO_DESCRIPTORS),
  })
  .strict()
  .refine((a) => a.frameLength <= a.fftSize, { message: 'must not exceed fftSize', path: ['frameLength'] })
  .refine((a) => a.fMax <= a.sampleRate / 2, { message: 'must not exceed sampleRate / 2', path: ['fMax'] })
  .refine((a) => a.fMin < a.fMax, { message: 'must be below fMax', path: ['fMin'] });

const schema = z
  .object({
    version: z.literal(1),
    audio: audioSchema,
    video: z
      .object({
        thumbWidth: positiveInt(256),
        thumbHeight: positiveInt(256),
        thumbnail: z.enum(['mean', 'last', 'none']),
        descriptors: descriptorList(VIDEO_DESCRIPTORS),
      })
      .strict(),
    text: z
      .object({
        hashDim: positiveInt(1 << 20),
        maxNgram: z.union([z.literal(1), z.literal(2)]),
        hash: z.literal('fnv1a32'),
        maxChars: positiveInt(1 << 24),
        tooLong: z.enum(['truncate', 'skip']),
      })
      .strict(),
  })
  .strict();

/**
 * Checks a feature config read from outside (a model file, a command line) and returns it typed. Throws an
 * {@link InvalidOptionError} whose `option` is the dotted path of the first bad field, e.g. `features.audio.fftSize`.
 */
export function parseFeatureConfig(value: unknown, option = 'features'): FeatureConfig {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = [option, ...(issue?.path ?? []).map(String)].join('.');
  throw new InvalidOptionError(path, issue?.message ?? 'invalid feature config');
}

/**
 * Throws `BRAID_ERR_FEATURE_MISMATCH` naming the first field where `actual` differs from `expected` (the config a
 * model was trained with), so a model is never fed features of another shape or meaning.
 */
export function assertFeatureConfigMatches(expected: FeatureConfig, actual: FeatureConfig): void {
  const [difference] = jsonDifferences(expected, actual, '', 1);
  if (difference === undefined) return;
  throw new BraidError(
    'BRAID_ERR_FEATURE_MISMATCH',
    `feature config differs at "${difference.path}": expected ${difference.left}, got ${difference.right}`,
  );
}
