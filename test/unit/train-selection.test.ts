import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_WINDOWING } from '../../src/align/windowing.js';
import { mulberry32 } from '../../src/model/weights.js';
import type { Dataset, Sequence } from '../../src/train/dataset.js';
import {
  chooseSize,
  describeSelection,
  parseSelectionCriterion,
  type SelectableSize,
} from '../../src/train/selection.js';
import { useTrainingBackend } from '../../src/train/tf-setup.js';
import { trainModel } from '../../src/train/train.js';
import { TINY, TINY_INPUTS, TINY_TRAIN_OPTIONS, windowRefs } from '../helpers/tiny-training.js';

const RECALL = parseSelectionCriterion('recall-at-fpr:speech:distractor');

const size = (hidden: number, meanValLoss: number, recalls: (number | null)[]): SelectableSize => ({
  hidden,
  meanValLoss,
  folds: recalls.map((r) => ({
    validationOperating: { distractor: { speech: { recallAtFpr: r }, motion: { recallAtFpr: 0.5 } } },
  })),
});

/** Loud windows are speech, or (a quarter of them) a distractor that input 1 gives away in half the sessions. */
function dataset(): Dataset {
  const random = mulberry32(7);
  const F = TINY_INPUTS;
  const sequences: Sequence[] = Array.from({ length: 10 }, (_, s) => {
    const steps = 60;
    const x = new Float32Array(steps * F);
    const y = new Float32Array(steps);
    const aux = new Float32Array(steps);
    for (let t = 0; t < steps; t++) {
      const loud = random() < 1 / 3;
      const distractor = loud && random() < 0.25;
      x[t * F] = loud ? 1 : 0;
      if (s % 2 === 0) x[t * F + 1] = distractor ? 1 : 0;
      x[t * F + 2] = random();
      y[t] = loud && !distractor ? 1 : 0;
      aux[t] = distractor ? 1 : 0;
    }
    return { session: `s${s}`, streamId: 'a', windows: windowRefs(steps), x, y, aux };
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

describe('choosing the hidden size', () => {
  it('parses loss or recall-at-fpr:LABEL:CONDITION and says what is wrong', () => {
    expect(parseSelectionCriterion('loss')).toEqual({ kind: 'loss' });
    expect(RECALL).toEqual({ kind: 'recall-at-fpr', label: 'speech', condition: 'distractor' });
    for (const bad of ['recall-at-fpr:speech', 'recall:speech:distractor', 'recall-at-fpr::distractor', ''])
      expect(() => parseSelectionCriterion(bad)).toThrow(/"loss" or "recall-at-fpr:LABEL:CONDITION"/);
    expect(describeSelection(RECALL)).toBe(
      'mean validation recall of speech at 5 % false positives on distractor, over folds (ties: lower loss)',
    );
  });

  it('by loss takes the lowest loss; by recall the highest mean recall over folds, ties to the lower loss', () => {
    const sizes = [size(32, 0.05, [0.9, 0.92]), size(64, 0.06, [0.95, 0.93]), size(128, 0.055, [0.96, 0.92])];
    expect(chooseSize(sizes, { kind: 'loss' }).hidden).toBe(32);
    expect(chooseSize(sizes, RECALL).hidden).toBe(128);
    expect(chooseSize([sizes[1], size(16, 0.07, [0.94, 0.94])] as SelectableSize[], RECALL).hidden).toBe(64);
    expect(chooseSize([size(16, 0.07, [0.94]), size(8, 0.065, [0.94])], RECALL).hidden).toBe(8);
  });

  it('refuses to rank a fold that has nothing to rank', () => {
    expect(() => chooseSize([size(32, 0.05, [0.9, null])], RECALL)).toThrow(
      /fold 2 of hidden 32 has no validation windows where "distractor" is on and "speech" off/,
    );
  });

  it('trains every size, keeps the one the criterion ranks first, and says which criterion in the report', () => {
    const data = dataset();
    const { report } = trainModel(data, {
      ...TINY_TRAIN_OPTIONS,
      hiddenSizes: [2, 6],
      folds: 2,
      maxEpochs: 6,
      selectBy: RECALL,
    });
    const recalls = report.selection.sizes.map((s) => {
      const values = s.folds.map(
        (f) => f.validationOperating?.['distractor']?.['speech']?.recallAtFpr as number,
      );
      expect(values.every((v) => v >= 0 && v <= 1)).toBe(true);
      return {
        hidden: s.hidden,
        recall: values.reduce((a, v) => a + v, 0) / values.length,
        loss: s.meanValLoss,
      };
    });
    const best = recalls.reduce((a, b) =>
      b.recall > a.recall || (b.recall === a.recall && b.loss < a.loss) ? b : a,
    );
    expect(report.selection.chosenHidden).toBe(best.hidden);
    expect(report.final.hidden).toBe(best.hidden);
    expect(report.selection.criterion).toBe(describeSelection(RECALL));
  });

  it('names a label that is not learnt or a condition that was not read', () => {
    const data = dataset();
    expect(() =>
      trainModel(data, {
        ...TINY_TRAIN_OPTIONS,
        selectBy: parseSelectionCriterion('recall-at-fpr:music:distractor'),
      }),
    ).toThrow(/select-by.*label "music" is not learnt \(labels: speech\)/);
    expect(() =>
      trainModel(data, {
        ...TINY_TRAIN_OPTIONS,
        selectBy: parseSelectionCriterion('recall-at-fpr:speech:voice_ru'),
      }),
    ).toThrow(/recorded label "voice_ru" was not read with the dataset \(aux labels: distractor\)/);
  });
});
