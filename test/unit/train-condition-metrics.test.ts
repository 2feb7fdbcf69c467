import { describe, expect, it } from 'vitest';
import { conditionRates } from '../../src/train/condition-metrics.js';

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
