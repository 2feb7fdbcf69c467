import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { sleb, uleb } from '../../src/core/wasm-encoding.js';
import {
  type CellType,
  DENSE_ACTIVATIONS,
  type DenseLayerConfig,
  type HeadType,
  type ModelConfig,
  modelDims,
  parseModelConfig,
} from '../../src/model/config.js';
import { FusedStepKernel } from '../../src/model/fused-kernel.js';
import { batchBucket } from '../../src/model/step-kernel.js';
import {
  createModelParams,
  disposeParams,
  forwardSequence,
  type GruParams,
  gruCell,
  type LstmParams,
  lstmCell,
} from '../../src/model/tf-model.js';
import { createModel, type Model, mulberry32, randomWeights } from '../../src/model/weights.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

interface Shape {
  cell: CellType;
  head: HeadType;
  audio: number;
  video: number;
  text: number;
  units: [number, number, number];
  hidden: number;
  labels: number;
  /** Dense layers over the whole input in place of the per-modality encoders (imported Keras models). */
  fusedEncoder?: DenseLayerConfig[];
  /** GRU only: Keras reset_after (default true). */
  resetAfter?: boolean;
}

function configFor(s: Shape, seed = 1): ModelConfig {
  const next = mulberry32(seed);
  const width = s.audio + s.video + s.text + 3;
  const fused = s.fusedEncoder !== undefined;
  return parseModelConfig({
    inputLayout: { audio: s.audio, video: s.video, text: s.text, mask: 3 },
    encoderUnits: {
      audio: fused ? 0 : s.audio && s.units[0],
      video: fused ? 0 : s.video && s.units[1],
      text: fused ? 0 : s.text && s.units[2],
    },
    ...(fused ? { fusedEncoder: s.fusedEncoder } : {}),
    ...(s.cell === 'gru' && s.resetAfter !== undefined ? { resetAfter: s.resetAfter } : {}),
    hidden: s.hidden,
    cell: s.cell,
    labels: Array.from({ length: s.labels }, (_, i) => `label${i}`),
    head: s.head,
    featureConfig: null,
    normalization: {
      mean: Array.from({ length: width }, () => next() - 0.5),
      std: Array.from({ length: width }, () => 0.5 + next()),
    },
  });
}

const shapeArb: fc.Arbitrary<Shape> = fc.record({
  cell: fc.constantFrom<CellType>('gru', 'lstm'),
  head: fc.constantFrom<HeadType>('sigmoid', 'softmax'),
  audio: fc.integer({ min: 0, max: 12 }),
  video: fc.integer({ min: 0, max: 9 }),
  text: fc.integer({ min: 0, max: 5 }),
  units: fc.tuple(
    fc.integer({ min: 1, max: 11 }),
    fc.integer({ min: 1, max: 9 }),
    fc.integer({ min: 1, max: 4 }),
  ),
  hidden: fc.integer({ min: 1, max: 20 }),
  labels: fc.integer({ min: 2, max: 9 }),
  fusedEncoder: fc.option(
    fc.array(
      fc.record({
        units: fc.integer({ min: 1, max: 12 }),
        activation: fc.constantFrom(...DENSE_ACTIVATIONS),
      }),
      { maxLength: 3 },
    ),
    { nil: undefined },
  ),
  resetAfter: fc.option(fc.boolean(), { nil: undefined }),
});

const randomArray = (n: number, next: () => number, scale = 1): Float32Array =>
  Float32Array.from({ length: n }, () => (next() * 2 - 1) * scale);

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

/** Streams xs [N][T][F] through the fused kernel one step at a time; returns y [N][T][L] flat and the final state. */
function streamFused(model: Model, xs: Float32Array, n: number, t: number) {
  const d = modelDims(model.config);
  const kernel = new FusedStepKernel(model, n);
  let state = new Float32Array(n * d.state);
  const ys = new Float32Array(n * t * d.labels);
  const x = new Float32Array(n * d.input);
  const y = new Float32Array(n * d.labels);
  for (let step = 0; step < t; step++) {
    for (let r = 0; r < n; r++)
      x.set(xs.subarray((r * t + step) * d.input, (r * t + step + 1) * d.input), r * d.input);
    const next = new Float32Array(n * d.state);
    kernel.step(n, x, state, y, next);
    state = next;
    for (let r = 0; r < n; r++)
      ys.set(y.subarray(r * d.labels, (r + 1) * d.labels), (r * t + step) * d.labels);
  }
  return { ys, state };
}

// Weights are set right after build; zeros avoid the orthogonal initializer, which needs tfjs' chained ops.
const noInit = { kernelInitializer: 'zeros', recurrentInitializer: 'zeros' } as const;

describe('cell math (tfjs ops) follows Keras', () => {
  it('lstmCell equals tfjs-layers LSTM (gates i, f, c, o; sigmoid recurrent activation)', () => {
    const next = mulberry32(7);
    const [n, t, f, h] = [3, 5, 4, 6];
    const kernel = tf.tensor2d(randomArray(f * 4 * h, next, 0.7), [f, 4 * h]);
    const recurrent = tf.tensor2d(randomArray(h * 4 * h, next, 0.7), [h, 4 * h]);
    const bias = tf.tensor1d(randomArray(4 * h, next, 0.5));
    const xs = tf.tensor3d(randomArray(n * t * f, next), [n, t, f]);
    const layer = tfl.layers.lstm({
      units: h,
      recurrentActivation: 'sigmoid',
      returnSequences: true,
      ...noInit,
    });
    layer.apply(xs); // builds the layer's weights
    layer.setWeights([kernel, recurrent, bias]);
    const expected = (layer.apply(xs) as tf.Tensor3D).arraySync();
    let hT = tf.zeros([n, h]) as tf.Tensor2D;
    let cT = tf.zeros([n, h]) as tf.Tensor2D;
    const p: LstmParams = { kernel, recurrentKernel: recurrent, bias };
    for (let step = 0; step < t; step++) {
      const x = tf.squeeze(tf.slice(xs, [0, step, 0], [n, 1, f]), [1]) as tf.Tensor2D;
      ({ h: hT, c: cT } = lstmCell(x, hT, cT, p));
      const got = hT.arraySync();
      for (let r = 0; r < n; r++)
        expect(maxAbsDiff(got[r] as number[], expected[r]?.[step] as number[])).toBeLessThan(1e-6);
    }
  });

  it('gruCell equals tfjs-layers GRU where reset_after and reset_before agree (candidate recurrent weights zero)', () => {
    const next = mulberry32(8);
    const [n, t, f, h] = [2, 6, 3, 5];
    const kernel = randomArray(f * 3 * h, next, 0.8);
    const recurrent = randomArray(h * 3 * h, next, 0.8);
    for (let k = 0; k < h; k++) recurrent.fill(0, k * 3 * h + 2 * h, (k + 1) * 3 * h);
    const bias = randomArray(2 * 3 * h, next, 0.5);
    bias.fill(0, 3 * h + 2 * h); // recurrent bias of the candidate
    // tfjs-layers has one bias: the input bias plus the recurrent bias of z and r.
    const layersBias = bias.slice(0, 3 * h).map((b, j) => b + (j < 2 * h ? (bias[3 * h + j] as number) : 0));
    const xs = tf.tensor3d(randomArray(n * t * f, next), [n, t, f]);
    const layer = tfl.layers.gru({
      units: h,
      recurrentActivation: 'sigmoid',
      returnSequences: true,
      ...noInit,
    });
    layer.apply(xs); // builds the layer's weights
    layer.setWeights([
      tf.tensor2d(kernel, [f, 3 * h]),
      tf.tensor2d(recurrent, [h, 3 * h]),
      tf.tensor1d(layersBias),
    ]);
    const expected = (layer.apply(xs) as tf.Tensor3D).arraySync();
    const p: GruParams = {
      kernel: tf.tensor2d(kernel, [f, 3 * h]),
      recurrentKernel: tf.tensor2d(recurrent, [h, 3 * h]),
      bias: tf.tensor2d(bias, [2, 3 * h]),
    };
    let hT = tf.zeros([n, h]) as tf.Tensor2D;
    for (let step = 0; step < t; step++) {
      hT = gruCell(tf.squeeze(tf.slice(xs, [0, step, 0], [n, 1, f]), [1]) as tf.Tensor2D, hT, p);
      const got = hT.arraySync();
      for (let r = 0; r < n; r++)
        expect(maxAbsDiff(got[r] as number[], expected[r]?.[step] as number[])).toBeLessThan(1e-6);
    }
  });

  it('gruCell with a bias of rank 1 equals tfjs-layers GRU (reset_after=false) with any recurrent weights', () => {
    const next = mulberry32(10);
    const [n, t, f, h] = [3, 6, 4, 5];
    const kernel = randomArray(f * 3 * h, next, 0.8);
    const recurrent = randomArray(h * 3 * h, next, 0.8);
    const bias = randomArray(3 * h, next, 0.5);
    const xs = tf.tensor3d(randomArray(n * t * f, next), [n, t, f]);
    const layer = tfl.layers.gru({
      units: h,
      recurrentActivation: 'sigmoid',
      returnSequences: true,
      ...noInit,
    });
    layer.apply(xs); // builds the layer's weights
    layer.setWeights([
      tf.tensor2d(kernel, [f, 3 * h]),
      tf.tensor2d(recurrent, [h, 3 * h]),
      tf.tensor1d(bias),
    ]);
    const expected = (layer.apply(xs) as tf.Tensor3D).arraySync();
    const p: GruParams = {
      kernel: tf.tensor2d(kernel, [f, 3 * h]),
      recurrentKernel: tf.tensor2d(recurrent, [h, 3 * h]),
      bias: tf.tensor1d(bias),
    };
    let hT = tf.zeros([n, h]) as tf.Tensor2D;
    for (let step = 0; step < t; step++) {
      hT = gruCell(tf.squeeze(tf.slice(xs, [0, step, 0], [n, 1, f]), [1]) as tf.Tensor2D, hT, p);
      const got = hT.arraySync();
      for (let r = 0; r < n; r++)
        expect(maxAbsDiff(got[r] as number[], expected[r]?.[step] as number[])).toBeLessThan(1e-6);
    }
  });

  it('gruCell applies the reset gate after the recurrent product (reset_after=true), with bias rows [input, recurrent]', () => {
    const next = mulberry32(9);
    const [f, h] = [3, 4];
    const W = randomArray(f * 3 * h, next);
    const U = randomArray(h * 3 * h, next);
    const b = randomArray(2 * 3 * h, next);
    const x = randomArray(f, next);
    const h0 = randomArray(h, next);
    // Keras GRUCell.call with reset_after=True, transcribed with scalar loops.
    const sig = (v: number): number => 1 / (1 + Math.exp(-v));
    const mx = (j: number): number => {
      let s = b[j] as number;
      for (let k = 0; k < f; k++) s += (x[k] as number) * (W[k * 3 * h + j] as number);
      return s;
    };
    const mh = (j: number): number => {
      let s = b[3 * h + j] as number;
      for (let k = 0; k < h; k++) s += (h0[k] as number) * (U[k * 3 * h + j] as number);
      return s;
    };
    const expected = Array.from({ length: h }, (_, j) => {
      const z = sig(mx(j) + mh(j));
      const r = sig(mx(h + j) + mh(h + j));
      const hh = Math.tanh(mx(2 * h + j) + r * mh(2 * h + j));
      return z * (h0[j] as number) + (1 - z) * hh;
    });
    const got = gruCell(tf.tensor2d(x, [1, f]), tf.tensor2d(h0, [1, h]), {
      kernel: tf.tensor2d(W, [f, 3 * h]),
      recurrentKernel: tf.tensor2d(U, [h, 3 * h]),
      bias: tf.tensor2d(b, [2, 3 * h]),
    }).dataSync();
    expect(maxAbsDiff(got, expected)).toBeLessThan(1e-6);
  });
});

describe('fused CPU kernel', () => {
  it('streamed step by step equals the whole-sequence tfjs forward within 1e-5 (GRU and LSTM, many shapes and lengths)', () => {
    fc.assert(
      fc.property(
        shapeArb,
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 14 }),
        fc.integer({ min: 1, max: 1_000_000 }),
        (shape, n, t, seed) => {
          const config = configFor(shape, seed);
          const model = createModel(config, randomWeights(config, { seed, biasScale: 0.5 }));
          const d = modelDims(config);
          const next = mulberry32(seed + 1);
          const xs = randomArray(n * t * d.input, next, 2);
          const fused = streamFused(model, xs, n, t);
          const params = createModelParams(model);
          try {
            const ref = tf.tidy(() => {
              const out = forwardSequence(params, config, tf.tensor3d(xs, [n, t, d.input]));
              return { ys: out.y.dataSync(), state: out.state.dataSync() };
            });
            expect(maxAbsDiff(fused.ys, ref.ys)).toBeLessThan(1e-5);
            expect(maxAbsDiff(fused.state, ref.state)).toBeLessThan(1e-5);
          } finally {
            disposeParams(params);
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it("gives a row the same bits whatever the batch size and the row's position in it", () => {
    fc.assert(
      fc.property(
        shapeArb,
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.array(fc.integer({ min: 1, max: 13 }), { minLength: 2, maxLength: 5 }),
        (shape, seed, batchSizes) => {
          const config = configFor(shape, seed);
          const model = createModel(config, randomWeights(config, { seed, biasScale: 0.5 }));
          const d = modelDims(config);
          const next = mulberry32(seed + 2);
          const rows = 13;
          const x = randomArray(rows * d.input, next, 2);
          const s = randomArray(rows * d.state, next);
          const kernel = new FusedStepKernel(model, rows);
          const bits = (arr: Float32Array): number[] => Array.from(new Uint32Array(arr.slice().buffer));
          // Reference: every row alone.
          const alone = Array.from({ length: rows }, (_, r) => {
            const y = new Float32Array(d.labels);
            const s2 = new Float32Array(d.state);
            kernel.step(1, x.subarray(r * d.input), s.subarray(r * d.state), y, s2);
            return { y: bits(y), s: bits(s2) };
          });
          // Then in batches of other sizes, rows in a shuffled order.
          const order = Array.from({ length: rows }, (_, i) => i).sort(() => next() - 0.5);
          let at = 0;
          for (let b = 0; at < rows; b++) {
            const n = Math.min(batchSizes[b % batchSizes.length] as number, rows - at);
            const picked = order.slice(at, at + n);
            at += n;
            const bx = new Float32Array(n * d.input);
            const bs = new Float32Array(n * d.state);
            picked.forEach((r, i) => {
              bx.set(x.subarray(r * d.input, (r + 1) * d.input), i * d.input);
              bs.set(s.subarray(r * d.state, (r + 1) * d.state), i * d.state);
            });
            const y = new Float32Array(n * d.labels);
            const s2 = new Float32Array(n * d.state);
            kernel.step(n, bx, bs, y, s2);
            picked.forEach((r, i) => {
              expect(bits(y.subarray(i * d.labels, (i + 1) * d.labels))).toEqual(alone[r]?.y);
              expect(bits(s2.subarray(i * d.state, (i + 1) * d.state))).toEqual(alone[r]?.s);
            });
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it('saturates like the reference for huge pre-activations (vector exp clamps instead of overflowing)', () => {
    for (const cell of ['gru', 'lstm'] as const) {
      const shape: Shape = {
        cell,
        head: 'softmax',
        audio: 5,
        video: 3,
        text: 2,
        units: [6, 4, 3],
        hidden: 9,
        labels: 4,
      };
      const config = configFor(shape, 17);
      const model = createModel(config, randomWeights(config, { seed: 17, biasScale: 0.5 }));
      const d = modelDims(config);
      const next = mulberry32(18);
      const [n, t] = [4, 3];
      const xs = Float32Array.from(
        { length: n * t * d.input },
        () => (next() < 0.5 ? -1 : 1) * 10 ** (next() * 8),
      );
      const fused = streamFused(model, xs, n, t);
      for (const v of fused.state) expect(Number.isFinite(v)).toBe(true);
      const params = createModelParams(model);
      const ref = tf.tidy(() => {
        const out = forwardSequence(params, config, tf.tensor3d(xs, [n, t, d.input]));
        return { ys: out.y.dataSync(), state: out.state.dataSync() };
      });
      disposeParams(params);
      expect(maxAbsDiff(fused.ys, ref.ys)).toBeLessThan(1e-5);
      // LSTM cell states are unbounded sums; compare them relative to their size.
      const scale = Math.max(1, ...Array.from(ref.state, Math.abs));
      expect(maxAbsDiff(fused.state, ref.state) / scale).toBeLessThan(1e-5);
    }
  });

  it('reads and writes the state in place when state and nextState are the same array', () => {
    const config = configFor({
      cell: 'lstm',
      head: 'sigmoid',
      audio: 4,
      video: 2,
      text: 1,
      units: [3, 2, 2],
      hidden: 5,
      labels: 3,
    });
    const model = createModel(config, randomWeights(config, { seed: 4, biasScale: 0.3 }));
    const d = modelDims(config);
    const next = mulberry32(5);
    const x = randomArray(3 * d.input, next);
    const s = randomArray(3 * d.state, next);
    const kernel = new FusedStepKernel(model, 4);
    const y1 = new Float32Array(3 * d.labels);
    const separate = new Float32Array(3 * d.state);
    kernel.step(3, x, s, y1, separate);
    const y2 = new Float32Array(3 * d.labels);
    kernel.step(3, x, s, y2, s);
    expect(Array.from(s)).toEqual(Array.from(separate));
    expect(Array.from(y2)).toEqual(Array.from(y1));
  });

  it('rejects a batch larger than it was built for, or arrays too short, naming them', () => {
    const config = configFor({
      cell: 'gru',
      head: 'softmax',
      audio: 2,
      video: 0,
      text: 0,
      units: [2, 1, 1],
      hidden: 3,
      labels: 2,
    });
    const kernel = new FusedStepKernel(createModel(config, randomWeights(config)), 2);
    const d = modelDims(config);
    const ok = (n: number) =>
      [
        new Float32Array(n * d.input),
        new Float32Array(n * d.state),
        new Float32Array(n * d.labels),
        new Float32Array(n * d.state),
      ] as const;
    expect(() => kernel.step(3, ...ok(3))).toThrow(/batch size must be an integer in 1\.\.2, got 3/);
    const [x, s, y, s2] = ok(2);
    expect(() => kernel.step(2, x.subarray(1), s, y, s2)).toThrow(/x needs 2×5 floats, got 9/);
    expect(() => kernel.step(2, x, s, y.subarray(1), s2)).toThrow(/y needs 2×2 floats/);
  });
});

describe('kernel plumbing', () => {
  it('encodes LEB128 like the WebAssembly spec (unsigned and signed)', () => {
    expect(uleb(0)).toEqual([0]);
    expect(uleb(127)).toEqual([0x7f]);
    expect(uleb(128)).toEqual([0x80, 0x01]);
    expect(uleb(624485)).toEqual([0xe5, 0x8e, 0x26]);
    expect(sleb(-1)).toEqual([0x7f]);
    expect(sleb(63)).toEqual([0x3f]);
    expect(sleb(64)).toEqual([0xc0, 0x00]);
    expect(sleb(-64)).toEqual([0x40]);
    expect(sleb(-123456)).toEqual([0xc0, 0xbb, 0x78]);
  });

  it('pads batch sizes to power-of-two buckets, capped at the maximum', () => {
    expect([1, 2, 3, 5, 16, 17, 200, 300].map((n) => batchBucket(n, 256))).toEqual([
      1, 2, 4, 8, 16, 32, 256, 256,
    ]);
  });
});
