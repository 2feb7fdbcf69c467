import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_WINDOWING } from '../../src/align/windowing.js';
import { mulberry32 } from '../../src/model/weights.js';
import type { Dataset, Sequence } from '../../src/train/dataset.js';
import { evaluateDataset } from '../../src/train/evaluate.js';
import { parseSelectionCriterion } from '../../src/train/selection.js';
import { useTrainingBackend } from '../../src/train/tf-setup.js';
import { trainModel } from '../../src/train/train.js';
import { nextScoreAbove } from '../../src/train/validated-threshold.js';
import { TINY, TINY_INPUTS, TINY_TRAIN_OPTIONS, windowRefs } from '../helpers/tiny-training.js';

/**
 * Loud windows are speech, or (a quarter of them) a distractor. In training, input 1 gives the distractor away;
 * in the `unheard` sessions it does not (a sound training never heard), so a model leaning on it fails there.
 */
function dataset(prefix: string, sessions: number, unheard: boolean, seed: number): Dataset {
  const random = mulberry32(seed);
  const F = TINY_INPUTS;
  const sequences: Sequence[] = Array.from({ length: sessions }, (_, s) => {
    const steps = 60;
    const x = new Float32Array(steps * F);
    const y = new Float32Array(steps);
    const aux = new Float32Array(steps);
    for (let t = 0; t < steps; t++) {
      const loud = random() < 1 / 3;
      const distractor = loud && random() < 0.25;
      x[t * F] = loud ? 1 : 0;
      if (!unheard) x[t * F + 1] = distractor ? 1 : 0;
      x[t * F + 2] = random();
      y[t] = loud && !distractor ? 1 : 0;
      aux[t] = distractor ? 1 : 0;
    }
    return { session: `${prefix}${s}`, streamId: 'a', windows: windowRefs(steps), x, y, aux };
  });
  return {
    featureConfig: TINY,
    windowing: DEFAULT_WINDOWING,
    labels: ['speech'],
    inputWidth: F,
    sequences,
    sessions: [],
    auxLabels: ['distractor'],
  };
}

beforeAll(() => useTrainingBackend());

describe('braid train --validation-data', () => {
  const training = dataset('train-', 8, false, 7);
  const validation = dataset('val-', 4, true, 8);

  it('trains each size on every training session, validates on the given recordings, and ships the validated run', () => {
    const { model, report } = trainModel(
      training,
      {
        ...TINY_TRAIN_OPTIONS,
        hiddenSizes: [2, 6],
        maxEpochs: 6,
        selectBy: parseSelectionCriterion('recall-at-fpr:speech:distractor'),
      },
      undefined,
      validation,
    );
    for (const size of report.selection.sizes) {
      expect(size.folds).toHaveLength(1);
      const fold = size.folds[0];
      expect(fold?.trainSessions).toEqual(training.sequences.map((s) => s.session));
      expect(fold?.validationSessions).toEqual(validation.sequences.map((s) => s.session));
      expect(fold?.validationWindows).toBe(4 * 60);
      expect(fold?.validationOperating?.['distractor']?.['speech']?.recallAtFpr).toBeGreaterThanOrEqual(0);
    }
    expect(report.validationData).toEqual({ sessions: [], sequences: 4, windows: 240 });
    expect(report.dataset.sequences).toBe(8);
    // No retrain: the final model is the chosen size's validated run, at its best epoch.
    const chosen = report.selection.sizes.find((s) => s.hidden === report.selection.chosenHidden);
    const fold = chosen?.folds[0];
    expect(report.final).toMatchObject({ hidden: chosen?.hidden, validated: true, epochs: fold?.bestEpoch });
    expect(report.final.history).toEqual(fold?.history);
    const scored = evaluateDataset(model, null, validation);
    expect(scored.model['speech']?.f1).toBeCloseTo(fold?.validation['speech']?.f1 as number, 6);
    expect(scored.model['speech']?.recall).toBeCloseTo(fold?.validation['speech']?.recall as number, 6);
    expect(report.baseline.final.validated).toBe(true);
    expect(report.baseline.size.folds[0]?.validationSessions).toEqual(fold?.validationSessions);
    // The shipped run's threshold at 5 % false positives on the validation distractors, scored at or above it: the
    // same false positives and recall the fold counted above its operating threshold.
    const point = fold?.validationOperating?.['distractor']?.['speech'];
    const validated = report.validatedThreshold;
    expect(validated).toMatchObject({ label: 'speech', condition: 'distractor', fpr: 0.05 });
    expect(validated?.on).toBe(nextScoreAbove(point?.thresholdAtFpr as number));
    expect(validated?.recall).toBe(point?.recallAtFpr);
    const at = evaluateDataset(model, null, validation, { speech: validated?.on as number });
    const rate = at.fprOn?.['distractor']?.model['speech'];
    expect(rate?.rate).toBeLessThanOrEqual(0.05);
    expect(rate?.negatives).toBeGreaterThanOrEqual(10);
    expect(at.model['speech']?.recall).toBeCloseTo(validated?.recall as number, 6);
  });

  it('validates a threshold only for a recall criterion on validation data, where the shipped run is the validated one', () => {
    const options = { ...TINY_TRAIN_OPTIONS, maxEpochs: 2 };
    expect(trainModel(training, options, undefined, validation).report.validatedThreshold).toBeUndefined();
    const split = trainModel(training, {
      ...options,
      folds: 2,
      selectBy: parseSelectionCriterion('recall-at-fpr:speech:distractor'),
    });
    expect(split.report.final.validated).toBeUndefined();
    expect(split.report.validatedThreshold).toBeUndefined();
  });

  it('says what does not match the training data', () => {
    const options = { ...TINY_TRAIN_OPTIONS, maxEpochs: 1 };
    expect(() => trainModel(training, { ...options, folds: 3 }, undefined, validation)).toThrow(
      /folds.*must be 1 with validation data/,
    );
    expect(() => trainModel(training, options, undefined, { ...validation, labels: ['motion'] })).toThrow(
      /--validation-data: labels motion differ from training's speech/,
    );
    expect(() => trainModel(training, options, undefined, { ...validation, auxLabels: [] })).toThrow(
      /--validation-data: recorded labels differ/,
    );
    expect(() =>
      trainModel(training, options, undefined, {
        ...validation,
        windowing: { ...DEFAULT_WINDOWING, size: DEFAULT_WINDOWING.size * 2 },
      }),
    ).toThrow(/--validation-data: the windowing differs/);
    expect(() =>
      trainModel(training, options, undefined, {
        ...validation,
        sequences: [...validation.sequences, training.sequences[0] as Sequence],
      }),
    ).toThrow(/--validation-data: recording "train-0" is also a training recording/);
    // A copy under another name: the same windows.
    expect(() =>
      trainModel(training, options, undefined, {
        ...validation,
        sequences: [
          ...validation.sequences,
          { ...(training.sequences[1] as Sequence), session: 'copy-of-train-1' },
        ],
      }),
    ).toThrow(
      /--validation-data: recording "copy-of-train-1" holds the very windows of training recording "train-1"/,
    );
    expect(() => trainModel(training, options, undefined, { ...validation, sequences: [] })).toThrow(
      /--validation-data: the recordings gave no windows/,
    );
  });
});
