import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_WINDOWING } from '../../src/align/windowing.js';
import { mulberry32 } from '../../src/model/weights.js';
import { packSequences } from '../../src/train/batches.js';
import { operatingSummary } from '../../src/train/cli.js';
import type { Dataset, Sequence } from '../../src/train/dataset.js';
import { useTrainingBackend } from '../../src/train/tf-setup.js';
import { type SizeReport, type TrainOptions, trainModel } from '../../src/train/train.js';
import { applyWindowWeights, parseWindowWeights } from '../../src/train/window-weights.js';
import { TINY, TINY_INPUTS, TINY_TRAIN_OPTIONS, windowRefs } from '../helpers/tiny-training.js';

const F = TINY_INPUTS;

/**
 * Input 0 is 1 in a third of the windows ("loud"); a loud window is `on` three times in four and a recorded
 * `distractor` (on = 0) the fourth time, which no input tells apart: unweighted, the best a model can do is call
 * every loud window on; with distractor windows weighing 9, the weighted majority of loud windows is off.
 */
function sessions(count: number, steps: number, seed: number, separable = false): Sequence[] {
  const random = mulberry32(seed);
  return Array.from({ length: count }, (_, s) => {
    const x = new Float32Array(steps * F);
    const y = new Float32Array(steps);
    const aux = new Float32Array(steps * 2);
    for (let t = 0; t < steps; t++) {
      const loud = random() < 1 / 3;
      const distractor = loud && random() < 0.25;
      x[t * F] = loud ? 1 : 0;
      // Separable: one more input says which loud windows are distractors, so a model can rank them below the rest.
      if (separable) x[t * F + 1] = distractor ? 1 : 0;
      y[t] = loud && !distractor ? 1 : 0;
      aux[t * 2] = distractor ? 1 : 0;
      aux[t * 2 + 1] = Number.NaN; // a label this recording does not carry
    }
    return { session: `s${seed}-${s}`, streamId: 'a', windows: windowRefs(steps), x, y, aux };
  });
}

const dataset = (sequences: Sequence[]): Dataset => ({
  featureConfig: TINY,
  windowing: DEFAULT_WINDOWING,
  labels: ['on'],
  inputWidth: F,
  sequences,
  sessions: [],
  auxLabels: ['distractor', 'voice_ru'],
});

const options: TrainOptions = {
  ...TINY_TRAIN_OPTIONS,
  chunk: 10,
  maxEpochs: 12,
  patience: 12,
  learningRate: 0.03,
};

beforeAll(() => useTrainingBackend());

describe('window weights', () => {
  it('parses LABEL=WEIGHT pairs and names what is wrong', () => {
    expect(parseWindowWeights('distractor=3, distractor_music=0.5')).toEqual({
      distractor: 3,
      distractor_music: 0.5,
    });
    expect(() => parseWindowWeights('distractor')).toThrow(/LABEL=WEIGHT.*"distractor"/);
    expect(() => parseWindowWeights('distractor=0')).toThrow(/weights > 0.*"distractor=0"/);
    expect(() => parseWindowWeights('distractor=x')).toThrow(/"distractor=x"/);
    expect(() => parseWindowWeights('a=2,a=3')).toThrow(/"a" twice/);
  });

  it('weighs each window by the largest weight of its labels that are on, 1 elsewhere, into the packed loss weights', () => {
    const data = dataset(sessions(2, 40, 5));
    const weighted = applyWindowWeights(data, { distractor: 4 });
    for (const s of weighted) {
      const w = Array.from(s.weights as Float32Array);
      expect(w).toEqual(Array.from({ length: 40 }, (_, t) => ((s.aux as Float32Array)[t * 2] === 1 ? 4 : 1)));
      expect(w).toContain(4);
    }
    const packed = packSequences(weighted, F, 1);
    expect(Array.from(packed.w)).toEqual(weighted.flatMap((s) => Array.from(s.weights as Float32Array)));
    expect(applyWindowWeights(data, {})).toBe(data.sequences);
  });

  it('refuses a label that was not read with the dataset or that no recording carries', () => {
    const data = dataset(sessions(1, 10, 5));
    expect(() => applyWindowWeights(data, { distracter: 3 })).toThrow(
      /"distracter" was not read with the dataset \(aux labels: distractor, voice_ru\)/,
    );
    expect(() => applyWindowWeights(data, { voice_ru: 3 })).toThrow(
      /no recording carries the window weight label "voice_ru"/,
    );
    expect(() => trainModel(data, { ...options, windowWeights: { distractor: -1 } })).toThrow(
      /window-weight/,
    );
  });

  // Each of these trains several runs: about 20 s alone, past the 30 s default when both cores are busy elsewhere.
  it('moves both the model and the baseline off the windows that weigh more', () => {
    const data = dataset(sessions(10, 60, 11));
    const recall = (windowWeights: TrainOptions['windowWeights']) => {
      const { report } = trainModel(data, { ...options, windowWeights });
      return {
        model: report.selection.sizes[0]?.folds[0]?.validation['on']?.recall,
        baseline: report.baseline.size.folds[0]?.validation['on']?.recall,
      };
    };
    const plain = recall({});
    const weighted = recall({ distractor: 9 });
    expect(plain.model).toBeGreaterThan(0.9);
    expect(plain.baseline).toBeGreaterThan(0.9);
    expect(weighted.model).toBeLessThan(0.1);
    expect(weighted.baseline).toBeLessThan(0.1);
  }, 120_000);

  it("reports each fold's validation operating points on every recorded label, which tell runs apart where the inputs do", () => {
    const points = (separable: boolean) => {
      const { report } = trainModel(dataset(sessions(10, 60, 11, separable)), options);
      const fold = report.selection.sizes[0]?.folds[0];
      expect(Object.keys(fold?.validationOperating ?? {})).toEqual(['distractor', 'voice_ru']);
      // No recording carries voice_ru: no negatives there, so no point rather than a made-up one.
      expect(fold?.validationOperating?.['voice_ru']?.['on']).toEqual({
        recallAtFpr: null,
        thresholdAtFpr: null,
        rateAtRecall: null,
        thresholdAtRecall: null,
      });
      // braid train's summary line: the size's mean over folds, only where the label has a point.
      expect(operatingSummary(report.selection.sizes[0] as SizeReport)).toEqual([
        expect.stringMatching(/^ +val recall at 5 % FPR on distractor: on \d\.\d{3}$/),
      ]);
      return fold?.validationOperating?.['distractor']?.['on'];
    };
    const separable = points(true);
    expect(separable?.recallAtFpr).toBeGreaterThan(0.9);
    expect(separable?.rateAtRecall).toBeLessThan(0.1);
    const blind = points(false);
    expect(blind?.recallAtFpr).toBeLessThan(0.5);
    expect(blind?.rateAtRecall).toBeGreaterThan(0.5);
  }, 120_000);

  it('reports no operating points when the dataset has no recorded labels', () => {
    const { report } = trainModel(
      { ...dataset(sessions(4, 30, 3)), auxLabels: [] },
      { ...options, maxEpochs: 2 },
    );
    expect(report.selection.sizes[0]?.folds[0]).not.toHaveProperty('validationOperating');
  });
});
