import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { describe, expect, it } from 'vitest';
import { BraidError, InvalidOptionError } from '../../src/core/errors.js';
import { createKernel, createStepKernel, parseBackendName, probeBackend } from '../../src/model/backends.js';
import { identityNormalization, modelDims, parseModelConfig } from '../../src/model/config.js';
import { type BackendFigure, chooseBackend, selectBackend } from '../../src/model/select-backend.js';
import type { SlotStepKernel } from '../../src/model/slot-kernel.js';
import { FRESH_SLOT } from '../../src/model/state-slots.js';
import type { BackendName } from '../../src/model/step-kernel.js';
import { TfStepKernel } from '../../src/model/tf-kernel.js';
import { createModelParams, disposeParams, forwardSequence } from '../../src/model/tf-model.js';
import { createModel, type Model, mulberry32, randomWeights } from '../../src/model/weights.js';

function model(cell: 'gru' | 'lstm', head: 'sigmoid' | 'softmax'): Model {
  const layout = { audio: 10, video: 6, text: 4, mask: 3 as const };
  const config = parseModelConfig({
    inputLayout: layout,
    encoderUnits: { audio: 8, video: 5, text: 3 },
    hidden: 12,
    cell,
    labels: ['a', 'b', 'c', 'd'],
    head,
    featureConfig: { v: 1 },
    normalization: identityNormalization(layout),
  });
  return createModel(config, randomWeights(config, { seed: 99, biasScale: 0.5 }));
}

const N = 5;
const T = 7;

function inputs(m: Model): Float32Array {
  const next = mulberry32(1234);
  return Float32Array.from({ length: N * T * modelDims(m.config).input }, () => next() * 4 - 2);
}

/** The tfjs-ops forward on tfjs-backend-cpu: the reference every backend is held to. */
async function reference(m: Model, xs: Float32Array): Promise<{ ys: Float32Array; state: Float32Array }> {
  await tf.setBackend('cpu');
  const params = createModelParams(m);
  const out = tf.tidy(() => {
    const r = forwardSequence(params, m.config, tf.tensor3d(xs, [N, T, modelDims(m.config).input]));
    return { ys: r.y.dataSync() as Float32Array, state: r.state.dataSync() as Float32Array };
  });
  disposeParams(params);
  return out;
}

/** Streams the N sequences through a kernel as the runtime drives it: row r in slot 2r + 1, fresh at t = 0. */
async function stream(
  kernel: SlotStepKernel,
  xs: Float32Array,
): Promise<{ ys: Float32Array; state: Float32Array }> {
  const { input: F, labels: L } = kernel.dims;
  const ys = new Float32Array(N * T * L);
  const x = new Float32Array(N * F);
  const y = new Float32Array(N * L);
  const slots = Uint32Array.from({ length: N }, (_, r) => 2 * r + 1);
  for (let t = 0; t < T; t++) {
    for (let r = 0; r < N; r++) x.set(xs.subarray((r * T + t) * F, (r * T + t + 1) * F), r * F);
    await kernel.step(N, x, t === 0 ? slots.map((s) => (s | FRESH_SLOT) >>> 0) : slots, y);
    for (let r = 0; r < N; r++) ys.set(y.subarray(r * L, (r + 1) * L), (r * T + t) * L);
  }
  return { ys, state: await kernel.states.read(slots) };
}

const maxAbsDiff = (a: Float32Array, b: Float32Array): number =>
  a.reduce((m, v, i) => Math.max(m, Math.abs(v - (b[i] as number))), 0);

async function expectAgreement(backend: BackendName): Promise<void> {
  for (const [cell, head] of [
    ['gru', 'sigmoid'],
    ['lstm', 'softmax'],
  ] as const) {
    const m = model(cell, head);
    const xs = inputs(m);
    const ref = await reference(m, xs);
    const kernel = await createKernel(m, backend, { maxBatch: 8, maxStreams: 16 });
    try {
      const got = await stream(kernel, xs);
      expect(maxAbsDiff(got.ys, ref.ys)).toBeLessThan(1e-5);
      expect(maxAbsDiff(got.state, ref.state)).toBeLessThan(1e-5);
    } finally {
      kernel.dispose();
    }
  }
}

describe('backends agree with the cpu reference', () => {
  it.each(['cpu-fused', 'cpu', 'wasm'] as const)(
    '%s (GRU and LSTM, batch padded to a bucket)',
    async (backend) => {
      await expectAgreement(backend);
    },
  );

  it.each(['webgpu', 'tensorflow'] as const)(
    '%s when available here, else skipped with a reason',
    async (backend) => {
      const probe = await probeBackend(backend);
      if (probe.available) return expectAgreement(backend);
      console.warn(`SKIPPING ${backend}: ${probe.reason}`);
      expect(probe.reason.length).toBeGreaterThan(10);
      const error = await createKernel(model('gru', 'sigmoid'), backend, { maxBatch: 4 }).catch(
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(InvalidOptionError);
      expect((error as Error).message).toContain(
        `backend "${backend}" is not available here: ${probe.reason}`,
      );
    },
  );

  it('webgpu keeps its states on the GPU: it has no host-state kernel', async () => {
    const error = await createStepKernel(model('gru', 'sigmoid'), 'webgpu' as 'cpu', 4).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(InvalidOptionError);
    expect((error as Error).message).toMatch(/webgpu keeps the states on the GPU/);
  });

  it('refuses to step when something else switched tfjs to another backend', async () => {
    await tf.setBackend('cpu');
    const kernel = new TfStepKernel(model('gru', 'sigmoid'), 'cpu', 2);
    await probeBackend('wasm');
    const { input, state, labels } = kernel.dims;
    expect(() =>
      kernel.step(
        1,
        new Float32Array(input),
        new Float32Array(state),
        new Float32Array(labels),
        new Float32Array(state),
      ),
    ).toThrow(/needs tfjs backend "cpu" active, but "wasm" is/);
    await tf.setBackend('cpu');
    kernel.dispose();
  });

  it('names unknown backends', () => {
    expect(parseBackendName('wasm')).toBe('wasm');
    expect(() => parseBackendName('cuda')).toThrow(
      /option "backend": must be auto or one of cpu-fused\|cpu\|wasm/,
    );
  });
});

describe('backend auto-selection', () => {
  const fig = (backend: BackendName, device: 'cpu' | 'gpu', ms: number[]): BackendFigure[] =>
    ms.map((msPerStep, i) => ({ backend, device, batch: 2 ** i, msPerStep, rowsPerSecond: 0 }));

  it('picks the least total time over the expected batch sizes', () => {
    const pick = chooseBackend([
      ...fig('cpu', 'cpu', [1, 9]),
      ...fig('cpu-fused', 'cpu', [0.1, 2]),
      ...fig('wasm', 'cpu', [0.5, 1]),
    ]);
    expect(pick.backend).toBe('wasm');
    expect(pick.reason).toContain('wasm is fastest');
  });

  it('prefers a GPU within 10% of the fastest, but not a slower one', () => {
    const near = chooseBackend([...fig('cpu-fused', 'cpu', [1, 1]), ...fig('webgpu', 'gpu', [0.5, 1.69])]);
    expect(near.backend).toBe('webgpu');
    expect(near.reason).toContain('within 10% of the fastest, cpu-fused');
    const far = chooseBackend([...fig('cpu-fused', 'cpu', [1, 1]), ...fig('webgpu', 'gpu', [0.5, 1.75])]);
    expect(far.backend).toBe('cpu-fused');
  });

  it('measures every available backend at start-up and says why the others were skipped', async () => {
    const m = model('gru', 'sigmoid');
    const selection = await selectBackend(m, { maxBatch: 32, batchSizes: [1, 32, 64], measureMs: 10 });
    try {
      const measured = [...new Set(selection.figures.map((f) => f.backend))];
      expect(measured).toEqual(expect.arrayContaining(['cpu-fused', 'cpu', 'wasm']));
      expect([...new Set(selection.figures.map((f) => f.batch))]).toEqual([1, 32]);
      for (const f of selection.figures) expect(f.msPerStep).toBeGreaterThan(0);
      const skippedOrMeasured = [...measured, ...selection.skipped.map((s) => s.backend)].sort();
      expect(skippedOrMeasured).toEqual(['cpu', 'cpu-fused', 'tensorflow', 'wasm', 'webgpu']);
      expect(measured).toContain(selection.backend);
      expect(selection.kernel.backend).toBe(selection.backend);
      const { input, labels } = selection.kernel.dims;
      await selection.kernel.step(1, new Float32Array(input), Uint32Array.of(0), new Float32Array(labels));
    } finally {
      selection.kernel.dispose();
      await tf.setBackend('cpu');
    }
  });

  it('skips a backend that probes fine but cannot build the model, naming why, and says so when none can', async () => {
    const good = model('gru', 'sigmoid');
    // A weight of the wrong length (as a model assembled by hand might have): every backend runs here, none builds it.
    const broken: Model = {
      config: good.config,
      weights: { ...good.weights, 'cell/kernel': new Float32Array(3) },
    };
    const error = await selectBackend(broken, { maxBatch: 4, batchSizes: [1], measureMs: 5 }).catch(
      (e: unknown) => e,
    );
    await tf.setBackend('cpu');
    expect(error).toBeInstanceOf(BraidError);
    expect((error as BraidError).code).toBe('BRAID_ERR_MODEL');
    const message = (error as Error).message;
    expect(message).toMatch(/^no backend can run this model here: /);
    for (const backend of ['cpu-fused', 'cpu', 'wasm'])
      expect(message).toMatch(new RegExp(`${backend}: failed to build: `));
    expect(message).toContain(
      'cpu-fused: failed to build: weights do not match the model config: weight cell/kernel has 3 values',
    );
  });

  it('uses a named backend without measuring', async () => {
    const selection = await selectBackend(model('lstm', 'softmax'), { backend: 'cpu-fused', maxBatch: 4 });
    expect(selection).toMatchObject({ backend: 'cpu-fused', figures: [], skipped: [] });
  });
});

describe('no leaks', () => {
  it('keeps tf.memory().numTensors constant over 100k steps on the tfjs cpu backend', {
    timeout: 120_000,
  }, async () => {
    await tf.setBackend('cpu');
    const layout = { audio: 2, video: 0, text: 0, mask: 3 as const };
    const config = parseModelConfig({
      inputLayout: layout,
      encoderUnits: { audio: 2, video: 0, text: 0 },
      hidden: 2,
      cell: 'lstm',
      labels: ['a', 'b'],
      head: 'softmax',
      featureConfig: null,
      normalization: identityNormalization(layout),
    });
    const kernel = new TfStepKernel(createModel(config, randomWeights(config)), 'cpu', 4);
    const { input, state, labels } = kernel.dims;
    const x = new Float32Array(3 * input).fill(0.5);
    const s = new Float32Array(3 * state);
    const y = new Float32Array(3 * labels);
    kernel.step(3, x, s, y, s);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 100_000; i++) kernel.step(3, x, s, y, s);
    expect(tf.memory().numTensors).toBe(before);
    kernel.dispose();
    expect(tf.memory().numTensors).toBe(before - 9); // its 9 weight tensors
  });
});
