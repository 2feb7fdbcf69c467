import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ConditionedRows } from '../../src/train/condition-metrics.js';
import { operatingIntervals, operatingPoints } from '../../src/train/operating-points.js';

/** One label per window: score, target (NaN: none), condition (NaN: unknown). */
const block = (rows: readonly (readonly [number, number, number])[]): ConditionedRows => ({
  scores: Float32Array.from(rows.map((r) => r[0])),
  targets: Float32Array.from(rows.map((r) => r[1])),
  condition: Float32Array.from(rows.map((r) => r[2])),
});

/** Every threshold tried, the slow way: the best recall within the FPR target, the best FPR within the recall target. */
function bruteForce(rows: readonly (readonly [number, number, number])[], fpr: number, recall: number) {
  const scores = (rows: readonly (readonly [number, number, number])[]) => rows.map((r) => Math.fround(r[0]));
  const negatives = scores(rows.filter(([, t, c]) => !Number.isNaN(t) && t <= 0.5 && c > 0.5));
  const positives = scores(rows.filter(([, t]) => t > 0.5));
  const candidates = [Number.NEGATIVE_INFINITY, ...negatives, ...positives, Number.POSITIVE_INFINITY];
  let bestRecall = -1;
  let bestRate = 2;
  for (const t of candidates) {
    // "above t" for the FPR point, "at or above t" for the recall point, as documented.
    if (negatives.filter((v) => v > t).length <= fpr * negatives.length + 1e-9)
      bestRecall = Math.max(bestRecall, positives.filter((v) => v > t).length / positives.length);
    if (positives.filter((v) => v >= t).length >= recall * positives.length - 1e-9)
      bestRate = Math.min(bestRate, negatives.filter((v) => v >= t).length / negatives.length);
  }
  return { negatives: negatives.length, positives: positives.length, bestRecall, bestRate };
}

describe('operatingPoints', () => {
  it('finds the recall at an FPR on the condition and the FPR at a recall', () => {
    // Negatives (condition on, target off): 0.9, 0.8, 0.3, 0.2, 0.1 — positives (target on): 0.95, 0.85, 0.7, 0.4.
    // A target-off window with the condition off, and windows without a target, count in neither.
    const rows = [
      [0.9, 0, 1],
      [0.8, 0, 1],
      [0.3, 0, 1],
      [0.2, 0, 1],
      [0.1, 0, 1],
      [0.95, 1, 0],
      [0.85, 1, 1],
      [0.7, 1, Number.NaN],
      [0.4, 1, 0],
      [0.99, 0, 0],
      [0.99, Number.NaN, 1],
    ] as const;
    // FPR ≤ 20 %: one negative of five may fire, so above 0.8 (the second highest): recall 2/4 (0.95, 0.85).
    // Recall ≥ 0.75: one positive of four may be missed, so from 0.7: negatives at or above it 0.9, 0.8: 2/5.
    const points = operatingPoints([block(rows)], ['a'], { fpr: 0.2, recall: 0.75 })['a'];
    expect(points?.recallAtFpr).toBe(0.5);
    expect(points?.thresholdAtFpr).toBeCloseTo(0.8, 6);
    expect(points?.rateAtRecall).toBe(0.4);
    expect(points?.thresholdAtRecall).toBeCloseTo(0.7, 6);
    // Ties at the threshold stay off: with 0.8 twice, FPR ≤ 20 % must stop above both.
    const tied = operatingPoints(
      [
        block([
          [0.8, 0, 1],
          [0.8, 0, 1],
          [0.1, 0, 1],
          [0.1, 0, 1],
          [0.1, 0, 1],
          [0.9, 1, 1],
          [0.8, 1, 1],
        ]),
      ],
      ['a'],
      { fpr: 0.2, recall: 1 },
    )['a'];
    expect(tied?.recallAtFpr).toBe(0.5);
    // Any FPR allowed: nothing needs a threshold, every positive is found.
    const all = operatingPoints([block(rows)], ['a'], { fpr: 1, recall: 0 })['a'];
    expect(all).toMatchObject({ recallAtFpr: 1, thresholdAtFpr: null });
  });

  it('has no points without negatives on the condition or without positives', () => {
    const none = operatingPoints([block([[0.9, 1, 0]])], ['a'], { fpr: 0.05, recall: 0.95 })['a'];
    expect(none).toEqual({
      recallAtFpr: null,
      thresholdAtFpr: null,
      rateAtRecall: null,
      thresholdAtRecall: null,
    });
    const intervals = operatingIntervals([block([[0.9, 1, 0]])], ['a'], { fpr: 0.05, recall: 0.95 })['a'];
    expect(intervals).toEqual({ recallAtFpr: null, rateAtRecall: null });
  });

  it('matches every threshold tried one by one', () => {
    const row = fc.tuple(
      fc.oneof(fc.constantFrom(0, 0.1, 0.25, 0.5, 0.75, 0.9, 1), fc.double({ min: 0, max: 1, noNaN: true })),
      fc.constantFrom(0, 1, 1, Number.NaN),
      fc.constantFrom(0, 1, 1, Number.NaN),
    );
    fc.assert(
      fc.property(
        fc.array(row, { minLength: 1, maxLength: 60 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (rows, fpr, recall) => {
          const slow = bruteForce(rows, fpr, recall);
          const points = operatingPoints([block(rows)], ['a'], { fpr, recall })['a'];
          if (slow.negatives === 0 || slow.positives === 0) expect(points?.recallAtFpr).toBeNull();
          else {
            expect(points?.recallAtFpr).toBe(slow.bestRecall);
            expect(points?.rateAtRecall).toBe(slow.bestRate);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('operatingIntervals', () => {
  it('holds the point estimate, is seeded, and draws recordings whole', () => {
    // Ten recordings whose scores overlap differently: the chosen threshold moves from draw to draw.
    const blocks = Array.from({ length: 10 }, (_, r) =>
      block(
        Array.from({ length: 40 }, (_, w) => {
          const positive = w % 2 === 0;
          const score = positive ? 0.4 + ((w * 7 + r * 13) % 60) / 100 : ((w * 11 + r * 17) % 70) / 100;
          return [score, positive ? 1 : 0, positive ? 0 : 1] as const;
        }),
      ),
    );
    const targets = { fpr: 0.05, recall: 0.95 };
    const point = operatingPoints(blocks, ['a'], targets)['a'];
    const a = operatingIntervals(blocks, ['a'], targets)['a'];
    expect(a?.recallAtFpr?.[0]).toBeLessThanOrEqual(point?.recallAtFpr as number);
    expect(a?.recallAtFpr?.[1]).toBeGreaterThanOrEqual(point?.recallAtFpr as number);
    expect(a?.rateAtRecall?.[0]).toBeLessThanOrEqual(point?.rateAtRecall as number);
    expect(a?.rateAtRecall?.[1]).toBeGreaterThanOrEqual(point?.rateAtRecall as number);
    expect((a?.recallAtFpr?.[1] as number) - (a?.recallAtFpr?.[0] as number)).toBeGreaterThan(0);
    expect(operatingIntervals(blocks, ['a'], targets)['a']).toEqual(a);
    // All forty windows of each recording in one group: one unit, so every draw is that unit, no spread.
    const one = operatingIntervals(blocks, ['a'], targets, { groups: blocks.map(() => 0) })['a'];
    expect(one?.recallAtFpr?.[0]).toBe(one?.recallAtFpr?.[1]);
    expect(() => operatingIntervals(blocks, ['a'], targets, { groups: [0] })).toThrow(RangeError);
  });
});
