import { describe, expect, it } from 'vitest';
import { conditionIntervals, conditionRates } from '../../src/train/condition-metrics.js';

describe('conditionRates', () => {
  it('counts false positives on condition-on and condition-off negatives separately, skipping unknowns', () => {
    // Two labels, rows [a, b]. Block 1, windows w0..w3; block 2, windows v0..v1.
    const blocks = [
      {
        scores: Float32Array.from([0.9, 0.1, /* w1 */ 0.2, 0.8, /* w2 */ 0.5, 0.5, /* w3 */ 0.7, 0.0]),
        targets: Float32Array.from([0, 0, /* w1 */ 0, 1, /* w2 */ 1, 0, /* w3 */ 0, Number.NaN]),
        condition: Float32Array.from([1, 1, 0, Number.NaN]),
      },
      {
        scores: Float32Array.from([0.6, 0.6, /* v1 */ 0.1, 0.9]),
        targets: Float32Array.from([0, 0, /* v1 */ 0, 0]),
        condition: Float32Array.from([1, 0]),
      },
    ];
    const rates = conditionRates(blocks, ['a', 'b'], 0.5);
    // a, condition on and target off: w0 (0.9 fires), w1 (0.2), v0 (0.6 fires). Condition off and target off: v1
    // (0.1); w2 is a positive of a, w3 has no condition value.
    expect(rates['a']).toEqual({
      negatives: 3,
      falsePositives: 2,
      rate: 2 / 3,
      otherNegatives: 1,
      otherFalsePositives: 0,
      otherRate: 0,
      // No window has the condition on and a's target on (w2 is a positive with the condition off).
      positives: 0,
      truePositives: 0,
      recall: null,
    });
    // b, condition on and target off: w0 (0.1), v0 (0.6 fires); w1 is a positive. Condition off and target off: w2
    // (0.5 fires: a score at the threshold is on) and v1 (0.9 fires); w3 has no target.
    expect(rates['b']).toEqual({
      negatives: 2,
      falsePositives: 1,
      rate: 0.5,
      otherNegatives: 2,
      otherFalsePositives: 2,
      otherRate: 1,
      // w1: condition on, b's target on, 0.8 fires.
      positives: 1,
      truePositives: 1,
      recall: 1,
    });
  });

  it('has no rate without such windows', () => {
    const rates = conditionRates(
      [
        {
          scores: Float32Array.from([0.9]),
          targets: Float32Array.from([1]),
          condition: Float32Array.from([1]),
        },
      ],
      ['a'],
    );
    expect(rates['a']).toMatchObject({ negatives: 0, rate: null, otherNegatives: 0, otherRate: null });
  });
});

/** A recording of one label: `negatives` condition-on windows with target off, `fired` of them scored on. */
const recording = (negatives: number, fired: number) => ({
  scores: Float32Array.from({ length: negatives }, (_, w) => (w < fired ? 0.9 : 0.1)),
  targets: new Float32Array(negatives),
  condition: new Float32Array(negatives).fill(1),
});

describe('conditionIntervals', () => {
  it('is a single point when every recording has the same rate', () => {
    const blocks = [recording(10, 2), recording(20, 4), recording(5, 1)];
    expect(conditionIntervals(blocks, ['a'])['a']).toEqual({ rate: [0.2, 0.2], recall: null });
  });

  it('holds the pooled rate, and draws recordings whole: blocks of one recording move together', () => {
    // Half the recordings fire on every window, half on none: the pooled rate is 0.5.
    const blocks = Array.from({ length: 20 }, (_, k) => recording(10, k % 2 === 0 ? 10 : 0));
    const apart = conditionIntervals(blocks, ['a'])['a']!.rate!;
    expect(conditionRates(blocks, ['a'])['a']!.rate).toBe(0.5);
    expect(apart[0]).toBeLessThan(0.5);
    expect(apart[1]).toBeGreaterThan(0.5);
    // The same blocks as two recordings (every firing block in one, every silent one in the other) say far less:
    // a draw of two is all firing, all silent or half, so the interval spans everything.
    const pairs = conditionIntervals(blocks, ['a'], 0.5, { groups: blocks.map((_, k) => k % 2) })['a']!.rate!;
    expect(pairs).toEqual([0, 1]);
    expect(apart[1] - apart[0]).toBeLessThan(0.5);
    // Seeded: the same inputs, the same interval.
    expect(conditionIntervals(blocks, ['a'])['a']!.rate).toEqual(apart);
  });

  it('gives a recall interval over condition-on positives, and refuses groups that do not match the blocks', () => {
    const hit = {
      scores: Float32Array.from([0.9]),
      targets: Float32Array.from([1]),
      condition: Float32Array.from([1]),
    };
    const miss = { ...hit, scores: Float32Array.from([0.1]) };
    const intervals = conditionIntervals([hit, hit, hit, miss], ['a'])['a']!;
    expect(intervals.rate).toBeNull();
    expect(intervals.recall![0]).toBeLessThanOrEqual(0.75);
    expect(intervals.recall![1]).toBe(1);
    expect(() => conditionIntervals([hit], ['a'], 0.5, { groups: [0, 1] })).toThrow(/2 groups for 1 blocks/);
  });
});
