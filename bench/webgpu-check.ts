/// <reference types="@webgpu/types" />
/**
 * The WGSL fused step (src/model/webgpu-step.ts) against the CPU reference (the fused CPU kernel, itself tested
 * equal to the tfjs model), the way the runtime drives it: streams on scattered slots of a larger table, each step a
 * random subset of them in a shuffled order, some rows flagged fresh (a reset), streams closing and new ones taking
 * their slots. Used by bench/gpu-entry.ts on a GPU and by test/unit/model-webgpu-execution.test.ts on SwiftShader.
 */
import { identityNormalization, parseModelConfig } from '../src/model/config.js';
import { FusedStepKernel } from '../src/model/fused-kernel.js';
import { FRESH_SLOT } from '../src/model/state-slots.js';
import { WebGpuStep } from '../src/model/webgpu-step.js';
import { createModel, type Model, mulberry32, randomWeights } from '../src/model/weights.js';

export interface CheckOptions {
  /** Streams alive at once (and the most rows in a step). */
  readonly streams: number;
  readonly steps: number;
  readonly workgroupSize?: number;
  readonly seed?: number;
}

export interface CheckResult {
  /** Worst relative L2 distance of one step's scores, over all steps. */
  readonly scores: number;
  /** Relative L2 distance of every live stream's state at the end. */
  readonly states: number;
  readonly rowsRun: number;
  readonly freshRows: number;
  readonly reusedSlots: number;
}

/** A GRU or LSTM whose cell sees `inputs` values (one slice through an equally wide encoder + 3 mask), 8 labels. */
export function checkModel(
  inputs: number,
  hidden: number,
  cell: 'gru' | 'lstm',
  head: 'sigmoid' | 'softmax',
): Model {
  const width = inputs - 3;
  const layout = { audio: width, video: 0, text: 0, mask: 3 as const };
  const config = parseModelConfig({
    inputLayout: layout,
    encoderUnits: { audio: width, video: 0, text: 0 },
    hidden,
    cell,
    labels: Array.from({ length: 8 }, (_, i) => `l${i}`),
    head,
    featureConfig: null,
    normalization: identityNormalization(layout),
  });
  return createModel(config, randomWeights(config, { seed: hidden + inputs, biasScale: 0.3 }));
}

/** A model shaped like an imported Keras one: dense layers over the whole input, optionally reset_after=false. */
export function importedShapeModel(
  cell: 'gru' | 'lstm',
  resetAfter: boolean | undefined,
  fusedEncoder: readonly { units: number; activation: 'relu' | 'tanh' }[],
): Model {
  const layout = { audio: 61, video: 0, text: 0, mask: 3 as const };
  const config = parseModelConfig({
    inputLayout: layout,
    encoderUnits: { audio: 0, video: 0, text: 0 },
    fusedEncoder,
    hidden: 64,
    cell,
    ...(resetAfter === undefined ? {} : { resetAfter }),
    labels: ['a', 'b', 'c'],
    head: 'softmax',
    featureConfig: null,
    normalization: identityNormalization(layout),
  });
  return createModel(config, randomWeights(config, { seed: 11, biasScale: 0.3 }));
}

/** The shader variants of imported Keras models (docs/keras.md): a fused encoder with a GRU without reset_after, and
 * an LSTM reading the normalized input directly (an empty fused encoder). */
export const IMPORTED_VARIANTS = [
  [
    'gru',
    false,
    [
      { units: 48, activation: 'relu' },
      { units: 32, activation: 'tanh' },
    ],
  ],
  ['lstm', undefined, []],
] as const;

export const relL2 = (got: Float32Array, want: Float32Array): number => {
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    num += ((got[i] as number) - (want[i] as number)) ** 2;
    den += (want[i] as number) ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
};

function shuffle<T>(items: T[], next: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}

/** Runs the same rows through the CPU kernel (one row at a time, host states) and the WGSL step (slots). */
export async function checkWebGpuStep(
  device: GPUDevice,
  model: Model,
  options: CheckOptions,
): Promise<CheckResult> {
  const { streams, steps } = options;
  const next = mulberry32(options.seed ?? 42);
  const tableSize = 3 * streams;
  const gpu = await WebGpuStep.create(device, model, {
    maxBatch: streams,
    maxStreams: tableSize,
    workgroupSize: options.workgroupSize,
  });
  const cpu = new FusedStepKernel(model, 1);
  const { input: F, state: S, labels: L } = cpu.dims;
  // Stream k lives in slot slotOf[k]; its CPU state in cpuState[k]; fresh[k]: its next row starts from zeros.
  const free = shuffle(
    Array.from({ length: tableSize }, (_, i) => i),
    next,
  );
  const slotOf = free.splice(0, streams);
  const fresh = new Array<boolean>(streams).fill(true);
  const cpuState = Array.from({ length: streams }, () => new Float32Array(S));
  let worst = 0;
  let rowsRun = 0;
  let freshRows = 0;
  let reusedSlots = 0;
  try {
    for (let t = 0; t < steps; t++) {
      // Now and then a stream closes and a new one takes a free slot (last used by a stream long gone), or resets.
      for (let k = 0; k < streams; k++) {
        const roll = next();
        if (t > 0 && roll < 0.08) {
          free.push(slotOf[k] as number);
          slotOf[k] = free.shift() as number;
          reusedSlots++;
          fresh[k] = true;
        } else if (t > 0 && roll < 0.16) fresh[k] = true;
      }
      const n = t === 0 ? streams : 1 + Math.floor(next() * streams);
      const rows = shuffle(
        Array.from({ length: streams }, (_, i) => i),
        next,
      ).slice(0, n);
      const x = Float32Array.from({ length: n * F }, () => (next() * 2 - 1) * 2);
      const slots = new Uint32Array(n);
      const want = new Float32Array(n * L);
      rows.forEach((k, i) => {
        const s = cpuState[k] as Float32Array;
        if (fresh[k]) {
          s.fill(0);
          freshRows++;
        }
        slots[i] = ((slotOf[k] as number) | (fresh[k] ? FRESH_SLOT : 0)) >>> 0;
        cpu.step(1, x.subarray(i * F, (i + 1) * F), s, want.subarray(i * L, (i + 1) * L), s);
        fresh[k] = false;
      });
      const got = new Float32Array(n * L);
      await gpu.step(n, x, slots, got);
      worst = Math.max(worst, relL2(got, want));
      rowsRun += n;
    }
    const live = Array.from({ length: streams }, (_, k) => k).filter((k) => !fresh[k]);
    const gotStates = await gpu.readStates(Uint32Array.from(live.map((k) => slotOf[k] as number)));
    const wantStates = new Float32Array(live.length * S);
    live.forEach((k, i) => {
      wantStates.set(cpuState[k] as Float32Array, i * S);
    });
    return { scores: worst, states: relL2(gotStates, wantStates), rowsRun, freshRows, reusedSlots };
  } finally {
    gpu.dispose();
    cpu.dispose();
  }
}
