import { BraidError } from '../core/errors.js';
import type { ModelDims } from './config.js';

export const BACKEND_NAMES = ['cpu-fused', 'cpu', 'wasm', 'webgpu', 'tensorflow'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

/**
 * One batched model step on some backend: rows 0..n−1 of x [n, F] and state [n, S] in; scores y [n, L] and the next
 * state [n, S] out. `state` and `nextState` may be the same array. Rows are independent: a row's result must not
 * depend on n or on the other rows.
 */
export interface StepKernel {
  readonly backend: BackendName;
  readonly device: 'cpu' | 'gpu';
  readonly dims: ModelDims;
  /** Largest n accepted. */
  readonly maxBatch: number;
  step(
    n: number,
    x: Float32Array,
    state: Float32Array,
    y: Float32Array,
    nextState: Float32Array,
  ): void | Promise<void>;
  dispose(): void;
}

/** Rejects a call that would read or write past the caller's arrays, naming the array and the sizes. */
export function checkStepArgs(
  kernel: Pick<StepKernel, 'dims' | 'maxBatch' | 'backend'>,
  n: number,
  x: Float32Array,
  state: Float32Array,
  y: Float32Array,
  nextState: Float32Array,
): void {
  const { dims, maxBatch } = kernel;
  const fail = (what: string): never => {
    throw new BraidError('BRAID_ERR_MODEL', `${kernel.backend} step: ${what}`);
  };
  if (!Number.isInteger(n) || n < 1 || n > maxBatch)
    fail(`batch size must be an integer in 1..${maxBatch}, got ${n}`);
  if (x.length < n * dims.input) fail(`x needs ${n}×${dims.input} floats, got ${x.length}`);
  if (state.length < n * dims.state) fail(`state needs ${n}×${dims.state} floats, got ${state.length}`);
  if (y.length < n * dims.labels) fail(`y needs ${n}×${dims.labels} floats, got ${y.length}`);
  if (nextState.length < n * dims.state)
    fail(`nextState needs ${n}×${dims.state} floats, got ${nextState.length}`);
}

/** Smallest power of two ≥ n, capped at max: GPU backends compile one program per shape, so shapes are bucketed. */
export function batchBucket(n: number, max: number): number {
  let b = 1;
  while (b < n) b *= 2;
  return Math.min(b, max);
}
