/**
 * The model-step bench table, shared by bench/model.ts (every backend here) and bench/gpu-entry.ts (on a GPU
 * machine): the bench models, timing of host-state kernels and of slot kernels, and the row format.
 */
import os from 'node:os';
import { identityNormalization, type ModelConfig, parseModelConfig } from '../src/model/config.js';
import type { SlotStepKernel } from '../src/model/slot-kernel.js';
import type { StepKernel } from '../src/model/step-kernel.js';
import { createModel, type Model, mulberry32, randomWeights } from '../src/model/weights.js';

export const SHAPES: readonly [number, number][] = [
  [64, 128],
  [256, 512],
];

export const batchesFor = (quick: boolean): number[] => (quick ? [1, 256] : [1, 16, 256, 4096]);
/** Time spent timing each cell of the table after warm-up (a slow cell still gets 3 timed steps). */
export const budgetFor = (quick: boolean): number => (quick ? 150 : 600);

/** A GRU whose cell sees `inputs` values: one 61/253-wide feature slice through an equally wide encoder + 3 mask. */
export function benchModel(inputs: number, hidden: number): Model {
  const width = inputs - 3;
  const layout = { audio: width, video: 0, text: 0, mask: 3 as const };
  const config: ModelConfig = parseModelConfig({
    inputLayout: layout,
    encoderUnits: { audio: width, video: 0, text: 0 },
    hidden,
    cell: 'gru',
    labels: Array.from({ length: 8 }, (_, i) => `l${i}`),
    head: 'sigmoid',
    featureConfig: null,
    normalization: identityNormalization(layout),
  });
  return createModel(config, randomWeights(config, { seed: 1, biasScale: 0.1 }));
}

export interface Timing {
  median: number;
  p90: number;
  steps: number;
}

async function timeRuns(run: () => Promise<void> | void, budgetMs: number): Promise<Timing> {
  await run();
  await run();
  const samples: number[] = [];
  const until = performance.now() + budgetMs;
  while (samples.length < 3 || (performance.now() < until && samples.length < 2000)) {
    const t0 = performance.now();
    await run();
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  return {
    median: samples[samples.length >> 1] as number,
    p90: samples[Math.floor(samples.length * 0.9)] as number,
    steps: samples.length,
  };
}

/** A host-state kernel: states in and out of the caller's arrays each step (two arrays, swapped). */
export function timeStepKernel(kernel: StepKernel, batch: number, budgetMs: number): Promise<Timing> {
  const { input, state, labels } = kernel.dims;
  const next = mulberry32(batch);
  const x = Float32Array.from({ length: batch * input }, () => next() * 2 - 1);
  let s = Float32Array.from({ length: batch * state }, () => next() * 2 - 1);
  let s2 = new Float32Array(batch * state);
  const y = new Float32Array(batch * labels);
  return timeRuns(async () => {
    await kernel.step(batch, x, s, y, s2);
    [s, s2] = [s2, s];
  }, budgetMs);
}

/** A slot kernel (webgpu): states stay in its table, slots 0..batch−1; inputs up, scores back. */
export function timeSlotKernel(kernel: SlotStepKernel, batch: number, budgetMs: number): Promise<Timing> {
  const next = mulberry32(batch);
  const x = Float32Array.from({ length: batch * kernel.dims.input }, () => next() * 2 - 1);
  const slots = Uint32Array.from({ length: batch }, (_, i) => i);
  const y = new Float32Array(batch * kernel.dims.labels);
  return timeRuns(() => kernel.step(batch, x, slots, y), budgetMs);
}

export const fmt = (ms: number): string =>
  ms < 1 ? ms.toFixed(4) : ms < 100 ? ms.toFixed(3) : ms.toFixed(0);
export const rate = (batch: number, ms: number): string =>
  Math.round((batch * 1000) / ms).toLocaleString('en-US');

export const machineLine = (): string =>
  `${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`;
