import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_WINDOWING } from '../../src/align/windowing.js';
import { mulberry32 } from '../../src/model/weights.js';
import type { Dataset, Sequence } from '../../src/train/dataset.js';
import { clipByGlobalNorm, type Learner, trainLoop } from '../../src/train/fit.js';
import { computeNormalization } from '../../src/train/normalization.js';
import {
  buildModelConfig,
  RecurrentLearner,
  scoreLogits,
  sequenceLogits,
  TrainableModel,
} from '../../src/train/recurrent.js';
import { useTrainingBackend } from '../../src/train/tf-setup.js';
import { trainModel } from '../../src/train/train.js';
import { TINY, TINY_INPUTS, TINY_TRAIN_OPTIONS, windowRefs } from '../helpers/tiny-training.js';

const F = TINY_INPUTS;
const LABELS = ['now', 'recent'];

/**
 * Synthetic sessions: input 0 carries sparse "events"; `now` is on in a window with an event, `recent` for three
 * windows after one (it needs memory). `noise` replaces the targets with coin flips (nothing to learn).
 */
function sessions(count: number, steps: number, seed: number, noise = false): Sequence[] {
  const random = mulberry32(seed);
  return Array.from({ length: count }, (_, s) => {
    const x = new Float32Array(steps * F).map(() => random());
    const y = new Float32Array(steps * LABELS.length);
    let last = -100;
    for (let t = 0; t < steps; t++) {
      const event = random() < 0.15;
      if (event) last = t;
      x[t * F] = event ? 1 : 0;
      y[t * 2] = noise ? Math.round(random()) : event ? 1 : 0;
      y[t * 2 + 1] = noise ? Math.round(random()) : t - last < 3 ? 1 : 0;
    }
    return { session: `session-${seed}-${s}`, streamId: 'a', windows: windowRefs(steps), x, y };
  });
}

const dataset = (sequences: Sequence[]): Dataset => ({
  featureConfig: TINY,
  windowing: DEFAULT_WINDOWING,
  labels: LABELS,
  inputWidth: F,
  sequences,
  sessions: [],
});

const tinyOptions = TINY_TRAIN_OPTIONS;

function recurrentModel(train: Sequence[], hidden = 6, seed = 1): TrainableModel {
  const config = buildModelConfig(
    TINY,
    LABELS,
    { cell: 'gru', hidden, encoderUnits: { audio: 3, video: 3, text: 3 } },
    computeNormalization(train, F),
  );
  return TrainableModel.initial(config, seed);
}

beforeAll(() => useTrainingBackend());

describe('clipByGlobalNorm', () => {
  it('scales all gradients together to the clip norm, keeping their direction', () => {
    const grads = { a: tf.tensor1d([3, 0]), b: tf.tensor1d([4]) };
    const clipped = clipByGlobalNorm(grads, 1);
    expect(clipped.norm).toBeCloseTo(5, 6);
    expect(Array.from(clipped.grads['a']!.dataSync())).toEqual([expect.closeTo(0.6, 6), 0]);
    expect(clipped.grads['b']!.dataSync()[0]).toBeCloseTo(0.8, 6);
    const untouched = clipByGlobalNorm(grads, 10);
    expect(Array.from(untouched.grads['b']!.dataSync())).toEqual([4]);
    tf.dispose([...Object.values(grads), ...Object.values(clipped.grads), ...Object.values(untouched.grads)]);
  });
});

/** Minimises w⁴ from w = 3: the gradient 4w³ grows faster than a fixed step can follow, the textbook explosion. */
function quartic(): Learner & { w: tf.Variable; dispose(): void } {
  const w = tf.tidy(() => tf.variable(tf.scalar(3), true, `quartic-${Math.random()}`));
  return {
    w,
    variables: [w],
    trainEpoch: (_epoch, update) => {
      for (let i = 0; i < 5; i++) update(() => tf.pow(w, 4) as tf.Scalar);
    },
    dispose: () => w.dispose(),
  };
}

describe('gradient clipping', () => {
  const sgd = { maxEpochs: 20, patience: 20, learningRate: 0.1, optimizer: 'sgd' as const };

  it('keeps an exploding-gradient problem finite where the unclipped run diverges', () => {
    const unclipped = quartic();
    const wild = trainLoop(unclipped, { ...sgd, clipnorm: Number.POSITIVE_INFINITY });
    expect(wild.stopReason).toBe('diverged');
    expect(wild.history.length).toBeLessThan(20);
    unclipped.dispose();

    const clipped = quartic();
    const tame = trainLoop(clipped, { ...sgd, clipnorm: 1 });
    expect(tame.stopReason).toBe('max_epochs');
    expect(tame.history.every((r) => Number.isFinite(r.trainLoss))).toBe(true);
    expect(tame.history[0]?.clipped).toBeGreaterThan(0);
    expect(Math.abs(clipped.w.dataSync()[0] as number)).toBeLessThan(1);
    clipped.dispose();
  });

  it('bounds every recurrent-model update by the clip norm', () => {
    const train = sessions(4, 24, 3);
    const model = recurrentModel(train);
    // A learning rate this large sends unclipped SGD far off; clipped, each update moves the weights by ≤ lr × clipnorm.
    const before = model.weights();
    const learner = new RecurrentLearner(model, train, [], { chunk: 8, batchSize: 4, seed: 1 });
    const result = trainLoop(learner, {
      maxEpochs: 1,
      patience: 1,
      learningRate: 5,
      optimizer: 'sgd',
      clipnorm: 0.01,
    });
    const after = model.weights();
    let squared = 0;
    for (const [name, w] of Object.entries(after))
      w.forEach((v, i) => {
        squared += (v - (before[name] as Float32Array)[i]!) ** 2;
      });
    const updates = result.history[0]?.updates ?? 0;
    expect(updates).toBe(3);
    expect(Math.sqrt(squared)).toBeLessThanOrEqual(5 * 0.01 * updates + 1e-4);
    expect(result.history[0]?.clipped).toBe(updates);
    model.dispose();
  });
});

describe('early stopping', () => {
  it('stops once validation stops improving and restores the best epoch', () => {
    // Random targets: the training loss falls as the model memorises, the validation loss rises.
    const train = sessions(4, 40, 11, true);
    const validation = sessions(2, 40, 12, true);
    const model = recurrentModel(train, 16);
    const learner = new RecurrentLearner(model, train, validation, { chunk: 10, batchSize: 4, seed: 2 });
    const result = trainLoop(learner, {
      maxEpochs: 60,
      patience: 3,
      learningRate: 0.03,
      optimizer: 'adam',
      clipnorm: 1,
    });
    expect(result.stopReason).toBe('early_stopping');
    expect(result.history.length).toBe(result.bestEpoch + 3);
    const losses = result.history.map((r) => r.valLoss as number);
    expect(result.bestValLoss).toBe(Math.min(...losses));
    expect(result.restored).toBe(true);
    const now = scoreLogits(sequenceLogits(model.params, model.config, validation), validation, LABELS).loss;
    expect(now).toBeCloseTo(result.bestValLoss as number, 5);
    expect(now).not.toBeCloseTo(losses.at(-1) as number, 5);
    model.dispose();
  });
});

describe('trainModel', () => {
  const data = dataset(sessions(6, 30, 21));

  it.each(['cpu', 'wasm'] as const)(
    'gives identical weights for one seed and different weights for another on %s, and frees its tensors',
    async (backend) => {
      await useTrainingBackend(backend);
      try {
        const tensors = tf.memory().numTensors;
        const a = trainModel(data, tinyOptions);
        const b = trainModel(data, tinyOptions);
        const c = trainModel(data, { ...tinyOptions, seed: 2 });
        for (const [name, w] of Object.entries(a.model.weights))
          expect(
            Buffer.from(w.buffer).equals(Buffer.from((b.model.weights[name] as Float32Array).buffer)),
          ).toBe(true);
        for (const [name, w] of Object.entries(a.baseline.weights))
          expect(Array.from(w)).toEqual(Array.from(b.baseline.weights[name] as Float32Array));
        expect(Array.from(a.model.weights['head/kernel'] as Float32Array)).not.toEqual(
          Array.from(c.model.weights['head/kernel'] as Float32Array),
        );
        expect(tf.memory().numTensors).toBe(tensors);
      } finally {
        await useTrainingBackend();
      }
    },
  );

  it('trains an LSTM cell through the same loop', () => {
    const { model, report } = trainModel(data, { ...tinyOptions, cell: 'lstm', maxEpochs: 2 });
    expect(model.config.cell).toBe('lstm');
    expect(model.weights['cell/bias']).toHaveLength(4 * 6);
    expect(report.final.history.every((r) => Number.isFinite(r.trainLoss))).toBe(true);
  });

  it('cross-validates by session: folds never share a session, each validates once, all sizes reported', () => {
    const { report } = trainModel(data, { ...tinyOptions, folds: 3, hiddenSizes: [4, 6], maxEpochs: 2 });
    const all = [...new Set(data.sequences.map((s) => s.session))].sort();
    for (const size of report.selection.sizes) {
      expect(size.folds).toHaveLength(3);
      for (const fold of size.folds) {
        expect(fold.trainSessions.filter((s) => fold.validationSessions.includes(s))).toEqual([]);
        expect([...fold.trainSessions, ...fold.validationSessions].sort()).toEqual(all);
        expect(fold.validationWindows).toBe(fold.validationSessions.length * 30);
      }
      expect(size.folds.flatMap((f) => f.validationSessions).sort()).toEqual(all);
    }
    expect(report.selection.sizes.map((s) => s.hidden)).toEqual([4, 6]);
    const best = report.selection.sizes.reduce((a, b) => (b.meanValLoss < a.meanValLoss ? b : a));
    expect(report.selection.chosenHidden).toBe(best.hidden);
    expect(report.final.hidden).toBe(best.hidden);
    expect(report.baseline.size.folds).toHaveLength(3);
  });

  it('learns what needs memory better than the memoryless baseline', () => {
    const train = dataset(sessions(8, 60, 31));
    const { report } = trainModel(train, { ...tinyOptions, maxEpochs: 8, patience: 8, learningRate: 0.03 });
    const model = report.selection.sizes[0]?.folds[0]?.validation['recent'];
    const baseline = report.baseline.size.folds[0]?.validation['recent'];
    expect(model?.f1).toBeGreaterThan((baseline?.f1 ?? 1) + 0.1);
  });
});
