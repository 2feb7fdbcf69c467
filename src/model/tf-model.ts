import * as tf from '@tensorflow/tfjs-core';
import {
  FEATURE_MODALITIES,
  type FeatureModality,
  type HeadType,
  type ModelConfig,
  type ModelDims,
  modelDims,
} from './config.js';
import { encoderBiasName, encoderKernelName, type Model, type ModelWeights, weightSpecs } from './weights.js';

/**
 * The model written once in tfjs ops: this is the definition the trainer differentiates and the `cpu`, `wasm`,
 * `webgpu` and `tensorflow` backends run; the fused CPU kernel is tested equal to it.
 */

export interface DenseParams {
  readonly kernel: tf.Tensor2D;
  readonly bias: tf.Tensor1D;
}

/** Keras GRU (reset_after=true): kernel [F, 3H], recurrentKernel [H, 3H], bias [2, 3H]; gates z, r, h. */
export interface GruParams {
  readonly kernel: tf.Tensor2D;
  readonly recurrentKernel: tf.Tensor2D;
  readonly bias: tf.Tensor2D;
}

/** Keras LSTM: kernel [F, 4H], recurrentKernel [H, 4H], bias [4H]; gates i, f, c, o. */
export interface LstmParams {
  readonly kernel: tf.Tensor2D;
  readonly recurrentKernel: tf.Tensor2D;
  readonly bias: tf.Tensor1D;
}

/** All parameters as tensors (or tf.Variables, which are tensors, when training). */
export interface ModelParams {
  readonly mean: tf.Tensor1D;
  readonly std: tf.Tensor1D;
  readonly encoders: Readonly<Partial<Record<FeatureModality, DenseParams>>>;
  readonly cell: GruParams | LstmParams;
  readonly head: DenseParams;
}

export interface StepOutput<R extends tf.Rank> {
  /** Pre-activation head outputs (the trainer's losses take logits). */
  readonly logits: tf.Tensor<R>;
  /** Scores in [0, 1]: sigmoid or softmax of the logits. */
  readonly y: tf.Tensor<R>;
  /** Recurrent state after the step: h (GRU) or h then c (LSTM), [N, S]. */
  readonly state: tf.Tensor2D;
}

/** One GRU step, Keras convention: h' = z ⊙ h + (1 − z) ⊙ tanh(x_h + r ⊙ (h U_h + b_h)). */
export function gruCell(x: tf.Tensor2D, h: tf.Tensor2D, p: GruParams): tf.Tensor2D {
  return tf.tidy(() => {
    const [inputBias, recurrentBias] = tf.unstack(p.bias) as [tf.Tensor1D, tf.Tensor1D];
    const gx = tf.add(tf.matMul(x, p.kernel), inputBias);
    const gh = tf.add(tf.matMul(h, p.recurrentKernel), recurrentBias);
    const [xz, xr, xh] = tf.split(gx, 3, 1) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
    const [hz, hr, hh] = tf.split(gh, 3, 1) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
    const z = tf.sigmoid(tf.add(xz, hz));
    const r = tf.sigmoid(tf.add(xr, hr));
    const candidate = tf.tanh(tf.add(xh, tf.mul(r, hh)));
    return tf.add(tf.mul(z, h), tf.mul(tf.sub(1, z), candidate));
  });
}

/** One LSTM step, Keras convention: gates i, f, c, o from x W + h U + b. */
export function lstmCell(
  x: tf.Tensor2D,
  h: tf.Tensor2D,
  c: tf.Tensor2D,
  p: LstmParams,
): { h: tf.Tensor2D; c: tf.Tensor2D } {
  return tf.tidy(() => {
    const gates = tf.add(tf.add(tf.matMul(x, p.kernel), tf.matMul(h, p.recurrentKernel)), p.bias);
    const [gi, gf, gc, go] = tf.split(gates, 4, 1) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
    const nextC: tf.Tensor2D = tf.add(tf.mul(tf.sigmoid(gf), c), tf.mul(tf.sigmoid(gi), tf.tanh(gc)));
    const nextH: tf.Tensor2D = tf.mul(tf.sigmoid(go), tf.tanh(nextC));
    return { h: nextH, c: nextC };
  });
}

/** Normalization, per-modality dense ReLU encoders, and fusion with the (normalized) presence mask. */
export function encodeInput(x: tf.Tensor2D, params: ModelParams, dims: ModelDims): tf.Tensor2D {
  return tf.tidy(() => {
    const n = x.shape[0];
    const xn: tf.Tensor2D = tf.div(tf.sub(x, params.mean), params.std);
    const parts: tf.Tensor2D[] = [];
    for (const m of FEATURE_MODALITIES) {
      const enc = params.encoders[m];
      if (!enc) continue;
      const slice = tf.slice(xn, [0, dims.inputOffset[m]], [n, enc.kernel.shape[0]]);
      parts.push(tf.relu(tf.add(tf.matMul(slice, enc.kernel), enc.bias)) as tf.Tensor2D);
    }
    parts.push(tf.slice(xn, [0, dims.maskOffset], [n, 3]));
    return tf.concat(parts, 1);
  });
}

export function headActivation<R extends tf.Rank>(logits: tf.Tensor<R>, head: HeadType): tf.Tensor<R> {
  return head === 'sigmoid' ? tf.sigmoid(logits) : tf.softmax(logits);
}

const isGru = (cell: GruParams | LstmParams): cell is GruParams => cell.bias.rank === 2;

/** The whole model for one time step: x [N, F], state [N, S] -> logits, scores [N, L] and the next state. */
export function modelStep(
  params: ModelParams,
  config: ModelConfig,
  x: tf.Tensor2D,
  state: tf.Tensor2D,
): StepOutput<tf.Rank.R2> {
  const dims = modelDims(config);
  return tf.tidy(() => {
    const cellIn = encodeInput(x, params, dims);
    let h: tf.Tensor2D;
    let next: tf.Tensor2D;
    if (isGru(params.cell)) {
      h = gruCell(cellIn, state, params.cell);
      next = h;
    } else {
      const n = state.shape[0];
      const prevH = tf.slice(state, [0, 0], [n, dims.hidden]);
      const prevC = tf.slice(state, [0, dims.hidden], [n, dims.hidden]);
      const out = lstmCell(cellIn, prevH, prevC, params.cell);
      h = out.h;
      next = tf.concat([out.h, out.c], 1);
    }
    const logits: tf.Tensor2D = tf.add(tf.matMul(h, params.head.kernel), params.head.bias);
    return { logits, y: headActivation(logits, config.head), state: next };
  });
}

/**
 * Runs a whole sequence xs [N, T, F] from state0 (zeros when omitted) by repeating {@link modelStep}: the trainer's
 * forward pass, differentiable with tf.grad / optimizer.minimize.
 */
export function forwardSequence(
  params: ModelParams,
  config: ModelConfig,
  xs: tf.Tensor3D,
  state0?: tf.Tensor2D,
): StepOutput<tf.Rank.R3> {
  const dims = modelDims(config);
  return tf.tidy(() => {
    const [n] = xs.shape;
    let state = state0 ?? tf.zeros([n, dims.state]);
    const logits: tf.Tensor2D[] = [];
    for (const x of tf.unstack(xs, 1) as tf.Tensor2D[]) {
      const out = modelStep(params, config, x, state);
      logits.push(out.logits);
      state = out.state;
    }
    const all = tf.stack(logits, 1) as tf.Tensor3D;
    return { logits: all, y: headActivation(all, config.head), state };
  });
}

const tensorOf = (weights: ModelWeights, name: string, shape: readonly number[]): tf.Tensor =>
  tf.tensor(weights[name] as Float32Array, [...shape], 'float32');

/** Uploads a model's weights to the current tfjs backend. Dispose with {@link disposeParams}. */
export function createModelParams(model: Model): ModelParams {
  const { config, weights } = model;
  const shapes = new Map(weightSpecs(config).map((s) => [s.name, s.shape]));
  const t = (name: string): tf.Tensor => tensorOf(weights, name, shapes.get(name) as number[]);
  const encoders: Partial<Record<FeatureModality, DenseParams>> = {};
  for (const m of FEATURE_MODALITIES)
    if (config.inputLayout[m] > 0)
      encoders[m] = {
        kernel: t(encoderKernelName(m)) as tf.Tensor2D,
        bias: t(encoderBiasName(m)) as tf.Tensor1D,
      };
  const cell = {
    kernel: t('cell/kernel') as tf.Tensor2D,
    recurrentKernel: t('cell/recurrent_kernel') as tf.Tensor2D,
    bias: t('cell/bias'),
  } as GruParams | LstmParams;
  return {
    mean: tf.tensor1d(config.normalization.mean as number[], 'float32'),
    std: tf.tensor1d(config.normalization.std as number[], 'float32'),
    encoders,
    cell,
    head: { kernel: t('head/kernel') as tf.Tensor2D, bias: t('head/bias') as tf.Tensor1D },
  };
}

function paramTensors(params: ModelParams): [string, tf.Tensor][] {
  const out: [string, tf.Tensor][] = [];
  for (const m of FEATURE_MODALITIES) {
    const enc = params.encoders[m];
    if (!enc) continue;
    out.push([encoderKernelName(m), enc.kernel], [encoderBiasName(m), enc.bias]);
  }
  out.push(
    ['cell/kernel', params.cell.kernel],
    ['cell/recurrent_kernel', params.cell.recurrentKernel],
    ['cell/bias', params.cell.bias],
    ['head/kernel', params.head.kernel],
    ['head/bias', params.head.bias],
  );
  return out;
}

/** Reads parameters back into plain weights (after training, before saving). */
export function paramsToWeights(params: ModelParams): ModelWeights {
  const out: Record<string, Float32Array> = {};
  for (const [name, t] of paramTensors(params)) out[name] = new Float32Array(t.dataSync());
  return out;
}

export function disposeParams(params: ModelParams): void {
  tf.dispose([params.mean, params.std, ...paramTensors(params).map(([, t]) => t)]);
}
