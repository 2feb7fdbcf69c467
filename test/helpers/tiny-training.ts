import { DEFAULT_FEATURE_CONFIG, type FeatureConfig, featureLayout } from '../../src/features/config.js';
import type { WindowRef } from '../../src/train/dataset.js';
import { DEFAULT_TRAIN_OPTIONS, type TrainOptions } from '../../src/train/train.js';

/** A tiny feature config (25 fused inputs) so models train in milliseconds. */
export const TINY: FeatureConfig = {
  ...DEFAULT_FEATURE_CONFIG,
  audio: { ...DEFAULT_FEATURE_CONFIG.audio, melBands: 4, melAggregates: ['mean'], rmsAggregates: ['mean'] },
  video: { thumbWidth: 2, thumbHeight: 2, thumbnail: 'mean' },
  text: { ...DEFAULT_FEATURE_CONFIG.text, hashDim: 4 },
};

/** Fused inputs per window under TINY. */
export const TINY_INPUTS = featureLayout(TINY).total;

/** Consecutive 500 ms windows from time 0, as a synthetic sequence's `windows`. */
export const windowRefs = (steps: number): WindowRef[] =>
  Array.from({ length: steps }, (_, i) => ({ index: i, start: i * 500_000, end: (i + 1) * 500_000 }));

/** Training options sized for TINY models on synthetic sequences. */
export const TINY_TRAIN_OPTIONS: TrainOptions = {
  ...DEFAULT_TRAIN_OPTIONS,
  hiddenSizes: [6],
  encoderUnits: { audio: 3, video: 3, text: 3 },
  chunk: 8,
  batchSize: 4,
  maxEpochs: 4,
  patience: 2,
  learningRate: 0.01,
  baselineHidden: 4,
  baselineBatchSize: 32,
};
