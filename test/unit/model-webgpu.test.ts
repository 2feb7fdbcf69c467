/// <reference types="@webgpu/types" />
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BraidError } from '../../src/core/errors.js';
import { parseModelConfig } from '../../src/model/config.js';
import { WebGpuStep } from '../../src/model/webgpu-step.js';
import { createModel, type Model, randomWeights } from '../../src/model/weights.js';

/**
 * Dawn's null backend compiles WGSL with Tint and runs WebGPU's validation, but executes nothing: these tests prove
 * the generated kernel compiles and its buffers, bindings and dispatches are valid — not its numbers. Those are
 * checked against the CPU kernel on SwiftShader by model-webgpu-execution.test.ts (and on a GPU by
 * bench/gpu-entry.ts).
 */
const hasDawn = (() => {
  try {
    createRequire(import.meta.url).resolve('webgpu');
    return true;
  } catch {
    return false;
  }
})();
if (!hasDawn)
  console.warn('SKIPPING WebGPU kernel validation: the optional "webgpu" package is not installed');

/** Variants of imported Keras models: a fused encoder in place of per-modality encoders, a GRU without reset_after. */
interface Variant {
  readonly fusedEncoder?: readonly { units: number; activation: 'linear' | 'relu' | 'tanh' | 'sigmoid' }[];
  readonly resetAfter?: boolean;
}

function model(
  cell: 'gru' | 'lstm',
  head: 'sigmoid' | 'softmax',
  hidden: number,
  layout = { audio: 7, video: 0, text: 3 },
  variant: Variant = {},
): Model {
  const fused = variant.fusedEncoder !== undefined;
  const config = parseModelConfig({
    inputLayout: { ...layout, mask: 3 },
    encoderUnits: fused
      ? { audio: 0, video: 0, text: 0 }
      : { audio: layout.audio && 5, video: layout.video && 4, text: layout.text && 2 },
    ...variant,
    hidden,
    cell,
    labels: ['a', 'b', 'c'],
    head,
    featureConfig: null,
    normalization: {
      mean: new Array(layout.audio + layout.video + layout.text + 3).fill(0),
      std: new Array(layout.audio + layout.video + layout.text + 3).fill(1),
    },
  });
  return createModel(config, randomWeights(config, { seed: 3 }));
}

describe.skipIf(!hasDawn)('WebGPU fused step on Dawn null backend (validation only, no execution)', () => {
  // Dawn for Node tears its devices down when the GPU instance is garbage-collected: keep it while testing.
  let gpu: GPU | undefined;
  let device: GPUDevice;
  beforeAll(async () => {
    const dawn = (await import('webgpu')) as unknown as { create(flags: string[]): GPU };
    gpu = dawn.create(['backend=null']);
    const adapter = await gpu.requestAdapter();
    if (!adapter) throw new Error('Dawn null backend gave no adapter');
    device = await adapter.requestDevice();
  });
  afterAll(() => {
    device?.destroy();
    gpu = undefined;
  });

  it.each([
    ['gru', 'sigmoid', 9, { audio: 7, video: 0, text: 3 }],
    ['gru', 'softmax', 128, { audio: 61, video: 0, text: 0 }],
    ['lstm', 'sigmoid', 6, { audio: 4, video: 5, text: 2 }],
    ['lstm', 'softmax', 130, { audio: 0, video: 8, text: 0 }],
  ] as const)(
    '%s %s H=%i: the WGSL compiles, the pipeline validates, steps and state I/O are valid',
    async (cell, head, hidden, layout) => {
      const step = await WebGpuStep.create(device, model(cell, head, hidden, layout), {
        maxBatch: 10,
        maxStreams: 16,
      });
      const { input, labels, state } = step.dims;
      device.pushErrorScope('validation');
      const y = new Float32Array(10 * labels);
      await step.step(7, new Float32Array(10 * input), Uint32Array.from([3, 1, 4, 0, 5, 9, 2]), y);
      await step.step(10, new Float32Array(10 * input), Uint32Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 15]), y);
      step.writeStates(Uint32Array.from([2, 7]), new Float32Array(2 * state));
      expect(await step.readStates(Uint32Array.from([7, 2, 11]))).toHaveLength(3 * state);
      expect(await device.popErrorScope()).toBeNull();
      step.dispose();
    },
  );

  it.each([
    ['gru', { resetAfter: false }, 9],
    ['gru', { resetAfter: false, fusedEncoder: [] }, 130],
    ['gru', { fusedEncoder: [{ units: 6, activation: 'relu' }] }, 5],
    [
      'lstm',
      {
        fusedEncoder: [
          { units: 6, activation: 'tanh' },
          { units: 4, activation: 'sigmoid' },
        ],
      },
      7,
    ],
    [
      'gru',
      {
        resetAfter: false,
        fusedEncoder: [
          { units: 9, activation: 'linear' },
          { units: 5, activation: 'relu' },
          { units: 3, activation: 'tanh' },
        ],
      },
      4,
    ],
  ] as const)(
    'imported-model variant %s %o H=%i: the WGSL compiles, the pipeline validates, a step is valid',
    async (cell, variant, hidden) => {
      const step = await WebGpuStep.create(
        device,
        model(cell, 'softmax', hidden, { audio: 6, video: 4, text: 2 }, variant),
        { maxBatch: 6, maxStreams: 8 },
      );
      device.pushErrorScope('validation');
      const y = new Float32Array(6 * step.dims.labels);
      await step.step(5, new Float32Array(6 * step.dims.input), Uint32Array.from([3, 1, 4, 0, 5]), y);
      expect(await step.readStates(Uint32Array.from([1, 3]))).toHaveLength(2 * step.dims.state);
      expect(await device.popErrorScope()).toBeNull();
      step.dispose();
    },
  );

  it('rejects duplicate or out-of-range slots and oversized batches, naming them', async () => {
    const step = await WebGpuStep.create(device, model('gru', 'sigmoid', 8), { maxBatch: 4, maxStreams: 8 });
    const x = new Float32Array(4 * step.dims.input);
    const y = new Float32Array(4 * step.dims.labels);
    await expect(step.step(2, x, Uint32Array.from([1, 1]), y)).rejects.toThrow(/slot 1 appears twice/);
    await expect(step.step(1, x, Uint32Array.from([8]), y)).rejects.toThrow(
      /slot 8 is outside the state table of 8/,
    );
    await expect(step.step(5, x, Uint32Array.from([0, 1, 2, 3, 4]), y)).rejects.toThrow(
      /batch size must be an integer in 1\.\.4/,
    );
    step.dispose();
  });

  it('refuses a step the device cannot dispatch before allocating anything, naming the limit', async () => {
    // Count the buffers the real device makes while WebGpuStep.create runs.
    const createBuffer = device.createBuffer.bind(device);
    let created = 0;
    device.createBuffer = (descriptor: GPUBufferDescriptor) => {
      created++;
      return createBuffer(descriptor);
    };
    let error: unknown;
    try {
      error = await WebGpuStep.create(device, model('gru', 'sigmoid', 8), {
        maxBatch: 2 ** 50,
        maxStreams: 2 ** 50,
      }).catch((e: unknown) => e);
    } finally {
      device.createBuffer = createBuffer;
    }
    expect(error).toBeInstanceOf(BraidError);
    expect((error as Error).message).toMatch(
      /maxBatch 1125899906842624 needs \d+ workgroups, over the device's maxComputeWorkgroupsPerDimension of \d+/,
    );
    expect(created).toBe(0);
    // create() pushed no error scope, or popped it: popping again finds the stack empty.
    await expect(device.popErrorScope()).rejects.toThrow();
  });

  it('refuses a model needing more workgroup memory than the device allows', async () => {
    const error = await WebGpuStep.create(device, model('gru', 'sigmoid', 1100), {
      maxBatch: 4,
      maxStreams: 4,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BraidError);
    expect((error as BraidError).message).toMatch(
      /needs \d+ bytes of workgroup memory, over the device's maxComputeWorkgroupStorageSize of 16384/,
    );
  });
});
