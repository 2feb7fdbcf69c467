import { describe, expect, it } from 'vitest';
import type { Sequence } from '../../src/train/dataset.js';
import { computeNormalization } from '../../src/train/normalization.js';

/** One sequence whose windows have the given rows of a 3-wide input. */
function sequence(rows: number[][]): Sequence {
  return {
    session: 's',
    streamId: 'a',
    windows: rows.map((_, i) => ({ index: i, start: i, end: i + 1 })),
    x: Float32Array.from(rows.flat()),
    y: new Float32Array(rows.length),
  };
}

// Column 0: a heavy-tailed feature (one outlier); column 1: sparse (mostly 0); column 2: constant.
const rows = [
  [0, 0, 1],
  [1, 0, 1],
  [2, 0, 1],
  [3, 0, 1],
  [4, 0, 1],
  [5, 0, 1],
  [6, 0, 1],
  [1000, 2, 1],
];

describe('computeNormalization', () => {
  it('robust: centres on the median and scales by IQR / 1.349, so an outlier does not squeeze the rest', () => {
    const { mean, std } = computeNormalization([sequence(rows)], 3);
    // Quantiles of 0..6, 1000 with linear interpolation: q25 = 1.75, median = 3.5, q75 = 5.25.
    expect(mean[0]).toBeCloseTo(3.5, 12);
    expect(std[0]).toBeCloseTo(3.5 / 1.349, 12);
  });

  it('falls back to the standard deviation where the IQR is 0, and to 1 without spread', () => {
    const { mean, std } = computeNormalization([sequence(rows)], 3);
    expect(mean[1]).toBe(0);
    expect(std[1]).toBeCloseTo(Math.sqrt((7 * 0.25 ** 2 + 1.75 ** 2) / 8), 6);
    expect(mean[2]).toBe(1);
    expect(std[2]).toBe(1);
  });

  it('standard: mean and population standard deviation over all windows of all sequences', () => {
    const { mean, std } = computeNormalization(
      [sequence(rows.slice(0, 4)), sequence(rows.slice(4))],
      3,
      'standard',
    );
    const values = rows.map((r) => r[0] as number);
    const m = values.reduce((a, b) => a + b, 0) / values.length;
    expect(mean[0]).toBeCloseTo(m, 9);
    expect(std[0]).toBeCloseTo(Math.sqrt(values.reduce((a, v) => a + (v - m) ** 2, 0) / values.length), 9);
    expect(std[2]).toBe(1);
  });
});
