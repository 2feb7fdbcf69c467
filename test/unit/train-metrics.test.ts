import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { binaryMetrics, labelMetrics, macroF1, rocAuc } from '../../src/train/metrics.js';

/** AUC by definition: over all positive/negative pairs, 1 when the positive scores higher, ½ on a tie. */
function pairwiseAuc(scores: number[], positive: boolean[]): number | null {
  let wins = 0;
  let pairs = 0;
  scores.forEach((s, i) => {
    if (!positive[i]) return;
    scores.forEach((t, j) => {
      if (positive[j]) return;
      pairs++;
      wins += s > t ? 1 : s === t ? 0.5 : 0;
    });
  });
  return pairs === 0 ? null : wins / pairs;
}

describe('rocAuc', () => {
  it('matches the textbook example (scikit-learn roc_auc_score docs)', () => {
    expect(rocAuc([0.1, 0.4, 0.35, 0.8], [false, false, true, true])).toBeCloseTo(0.75, 12);
  });

  it('counts ties as one half and is undefined with one class', () => {
    expect(rocAuc([0.5, 0.5, 0.5], [true, false, false])).toBe(0.5);
    expect(rocAuc([0.2, 0.9], [true, true])).toBeNull();
    expect(rocAuc([], [])).toBeNull();
  });

  it('equals the pairwise definition on arbitrary scores with ties', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 6 }), fc.boolean()), { minLength: 1, maxLength: 40 }),
        (rows) => {
          const scores = rows.map(([s]) => s / 6);
          const positive = rows.map(([, p]) => p);
          const expected = pairwiseAuc(scores, positive);
          const actual = rocAuc(scores, positive);
          if (expected === null) expect(actual).toBeNull();
          else expect(actual).toBeCloseTo(expected, 12);
        },
      ),
    );
  });
});

describe('binaryMetrics', () => {
  it('computes precision, recall and F1 at the threshold and skips windows without a target', () => {
    // tp: 0.9/1, 0.6/1; fp: 0.7/0; fn: 0.2/1; tn: 0.1/0; NaN target ignored even with a high score.
    const m = binaryMetrics([0.9, 0.6, 0.7, 0.2, 0.1, 0.99], [1, 1, 0, 1, 0, Number.NaN]);
    expect(m.precision).toBeCloseTo(2 / 3, 12);
    expect(m.recall).toBeCloseTo(2 / 3, 12);
    expect(m.f1).toBeCloseTo(2 / 3, 12);
    expect(m.positives).toBe(3);
    expect(m.negatives).toBe(2);
    // Pairs won by positives: 0.9 beats both negatives, 0.6 and 0.2 beat 0.1 only: 4 of 6.
    expect(m.auc).toBeCloseTo(4 / 6, 12);
  });

  it('gives 0 precision and F1 when nothing is predicted on', () => {
    const m = binaryMetrics([0.1, 0.2], [1, 0]);
    expect(m).toMatchObject({ precision: 0, recall: 0, f1: 0 });
  });

  it('treats a score equal to the threshold as on', () => {
    expect(binaryMetrics([0.5], [1]).recall).toBe(1);
    expect(binaryMetrics([0.5], [1], 0.6).recall).toBe(0);
  });
});

describe('labelMetrics', () => {
  it('reads each label from its column across row-major blocks', () => {
    const blocks = [
      { scores: Float32Array.from([0.9, 0.1, 0.8, 0.2]), targets: Float32Array.from([1, 0, 1, 1]) },
      { scores: Float32Array.from([0.1, 0.9]), targets: Float32Array.from([0, 1]) },
    ];
    const metrics = labelMetrics(blocks, ['a', 'b']);
    expect(metrics['a']).toMatchObject({ precision: 1, recall: 1, f1: 1, positives: 2, negatives: 1 });
    expect(metrics['b']?.recall).toBeCloseTo(0.5, 12);
    expect(macroF1(metrics)).toBeCloseTo((1 + metrics['b']!.f1) / 2, 12);
  });
});
