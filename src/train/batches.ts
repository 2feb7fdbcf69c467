import type { Sequence } from './dataset.js';

/**
 * Sequences side by side, padded at the end to the longest: x [B, T, F], y and w [B, T, L] row-major. w is the
 * window's loss weight (the sequence's `weights`, else 1) where a target exists and 0 for padding and for windows
 * without a label yet; y is 0 wherever w is 0.
 */
export interface PackedBatch {
  readonly size: number;
  readonly steps: number;
  readonly inputWidth: number;
  readonly labels: number;
  readonly x: Float32Array;
  readonly y: Float32Array;
  readonly w: Float32Array;
}

export function packSequences(
  sequences: readonly Sequence[],
  inputWidth: number,
  labels: number,
): PackedBatch {
  const size = sequences.length;
  const steps = sequences.reduce((m, s) => Math.max(m, s.windows.length), 0);
  const x = new Float32Array(size * steps * inputWidth);
  const y = new Float32Array(size * steps * labels);
  const w = new Float32Array(size * steps * labels);
  sequences.forEach((s, b) => {
    x.set(s.x, b * steps * inputWidth);
    const base = b * steps * labels;
    for (let i = 0; i < s.y.length; i++) {
      const target = s.y[i] as number;
      if (Number.isNaN(target)) continue;
      y[base + i] = target;
      w[base + i] = s.weights?.[Math.floor(i / labels)] ?? 1;
    }
  });
  return { size, steps, inputWidth, labels, x, y, w };
}

/** Time steps [from, to) of every sequence of a packed batch, as a smaller packed batch. */
export function timeSlice(batch: PackedBatch, from: number, to: number): PackedBatch {
  const { size, steps, inputWidth, labels } = batch;
  const n = to - from;
  const x = new Float32Array(size * n * inputWidth);
  const y = new Float32Array(size * n * labels);
  const w = new Float32Array(size * n * labels);
  for (let b = 0; b < size; b++) {
    x.set(
      batch.x.subarray((b * steps + from) * inputWidth, (b * steps + to) * inputWidth),
      b * n * inputWidth,
    );
    y.set(batch.y.subarray((b * steps + from) * labels, (b * steps + to) * labels), b * n * labels);
    w.set(batch.w.subarray((b * steps + from) * labels, (b * steps + to) * labels), b * n * labels);
  }
  return { size, steps: n, inputWidth, labels, x, y, w };
}

/** Splits a list into consecutive groups of at most `size`. */
export function groups<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export const weightSum = (batch: PackedBatch): number => batch.w.reduce((a, b) => a + b, 0);

/**
 * Mean binary cross-entropy of logits against targets where the weight is 1, in the numerically stable form
 * max(z, 0) − z·y + log(1 + e^−|z|); returns the sum and the count so batches can be pooled.
 */
export function crossEntropySum(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
): { sum: number; count: number } {
  let sum = 0;
  let count = 0;
  for (let i = 0; i < logits.length; i++) {
    const y = targets[i] as number;
    if (Number.isNaN(y)) continue;
    const z = logits[i] as number;
    sum += Math.max(z, 0) - z * y + Math.log1p(Math.exp(-Math.abs(z)));
    count++;
  }
  return { sum, count };
}
