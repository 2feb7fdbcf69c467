import * as tf from '@tensorflow/tfjs-core';
import {
  type DenseActivation,
  FEATURE_MODALITIES,
  type FeatureModality,
  type HeadType,
  type ModelConfig,
  type ModelDims,
  modelDims,
} from './config.js';
import {
  denseBiasName,
  denseKernelName,
  encoderBiasName,
  encoderKernelName,
  type Model,
  type ModelWeights,
  weightSpecs,
} from './weights.js';

/**
 * The model written once in tfjs ops: this is the definition the trainer differentiates and the `cpu`, `wasm`,
 * `webgpu` and `tensorflow` backends run; the fused CPU kernel is tested equal to it.
 */

export interface DenseParams {
  readonly kernel: tf.Tensor2D;
  readonly bias: tf.Tensor1D;
}

/**
 * Keras GRU: kernel [F, 3H], recurrentKernel [H, 3H], bias [2, 3H] (reset_after=true: input then recurrent bias)
 * or [3H] (reset_after=false: input bias only); gates z, r, h.
 */
export interface GruParams {
  readonly kernel: tf.Tensor2D;
  readonly recurrentKernel: tf.Tensor2D;
  readonly bias: tf.Tensor2D | tf.Tensor1D;
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
  /** The fused encoder's layers (config.fusedEncoder), in order; empty for per-modality encoders. */
  readonly dense: readonly DenseParams[];
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

/**
 * One GRU step, Keras convention: h' = z ⊙ h + (1 − z) ⊙ tanh(x_h + r ⊙ (h U_h + b_h)) with reset_after (a bias
 * of rank 2), h' = z ⊙ h + (1 − z) ⊙ tanh(x_h + (r ⊙ h) U_h) without (rank 1).
 */
export function gruCell(x: tf.Tensor2D, h: tf.Tensor2D, p: GruParams): tf.Tensor2D {
  if (p.bias.rank === 1) return gruCellResetBefore(x, h, p);
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

/** Keras GRUCell with reset_after=false: the reset gate scales h before the candidate's recurrent product. */
function gruCellResetBefore(x: tf.Tensor2D, h: tf.Tensor2D, p: GruParams): tf.Tensor2D {
  return tf.tidy(() => {
    const H = h.shape[1];
    const gx = tf.add(tf.matMul(x, p.kernel), p.bias);
    const [xz, xr, xh] = tf.split(gx, 3, 1) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
    const [uzr, uh] = tf.split(p.recurrentKernel, [2 * H, H], 1) as [tf.Tensor2D, tf.Tensor2D];
    const [hz, hr] = tf.split(tf.matMul(h, uzr), 2, 1) as [tf.Tensor2D, tf.Tensor2D];
    const z = tf.sigmoid(tf.add(xz, hz));
    const r = tf.sigmoid(tf.add(xr, hr));
    const candidate = tf.tanh(tf.add(xh, tf.matMul(tf.mul(r, h), uh)));
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

export function denseActivation(v: tf.Tensor2D, activation: DenseActivation): tf.Tensor2D {
  switch (activation) {
    case 'linear':
      return v;
    case 'relu':
      return tf.relu(v);
    case 'tanh':
      return tf.tanh(v);
    case 'sigmoid':
      return tf.sigmoid(v);
  }
}

/**
 * Normalization, then either per-modality dense ReLU encoders fused with the (normalized) presence mask, or the
 * fused encoder's dense layers over the whole normalized input.
 */
export function encodeInput(
  x: tf.Tensor2D,
  params: ModelParams,
  dims: ModelDims,
  config: Pick<ModelConfig, 'fusedEncoder'>,
): tf.Tensor2D {
  return tf.tidy(() => {
    const n = x.shape[0];
    const xn: tf.Tensor2D = tf.div(tf.sub(x, params.mean), params.std);
    if (config.fusedEncoder !== undefined)
      return config.fusedEncoder.reduce((v, layer, i) => {
        const p = params.dense[i] as DenseParams;
        return denseActivation(tf.add(tf.matMul(v, p.kernel), p.bias), layer.activation);
      }, xn as tf.Tensor2D);
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

/** The whole model for one time step: x [N, F], state [N, S] -> logits, scores [N, L] and the next state. */
export function modelStep(
  params: ModelParams,
  config: ModelConfig,
  x: tf.Tensor2D,
  state: tf.Tensor2D,
): StepOutput<tf.Rank.R2> {
  const dims = modelDims(config);
  return tf.tidy(() => {
    const cellIn = encodeInput(x, params, dims, config);
    let h: tf.Tensor2D;
    let next: tf.Tensor2D;
    if (config.cell === 'gru') {
      h = gruCell(cellIn, state, params.cell as GruParams);
      next = h;
    } else {
      const n = state.shape[0];
      const prevH = tf.slice(state, [0, 0], [n, dims.hidden]);
      const prevC = tf.slice(state, [0, dims.hidden], [n, dims.hidden]);
      const out = lstmCell(cellIn, prevH, prevC, params.cell as LstmParams);
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

/**
 * Arranges a config's weight tensors (by weight name, see weights.ts) as ModelParams: plain tensors for inference,
 * tf.Variables for training. The normalization becomes two new tensors.
 */
export function assembleParams(config: ModelConfig, tensor: (name: string) => tf.Tensor): ModelParams {
  const encoders: Partial<Record<FeatureModality, DenseParams>> = {};
  for (const m of FEATURE_MODALITIES)
    if (config.encoderUnits[m] > 0)
      encoders[m] = {
        kernel: tensor(encoderKernelName(m)) as tf.Tensor2D,
        bias: tensor(encoderBiasName(m)) as tf.Tensor1D,
      };
  const dense = (config.fusedEncoder ?? []).map((_, i) => ({
    kernel: tensor(denseKernelName(i)) as tf.Tensor2D,
    bias: tensor(denseBiasName(i)) as tf.Tensor1D,
  }));
  const cell = {
    kernel: tensor('cell/kernel') as tf.Tensor2D,
    recurrentKernel: tensor('cell/recurrent_kernel') as tf.Tensor2D,
    bias: tensor('cell/bias'),
  } as GruParams | LstmParams;
  return {
    mean: tf.tensor1d(config.normalization.mean as number[], 'float32'),
    std: tf.tensor1d(config.normalization.std as number[], 'float32'),
    encoders,
    dense,
    cell,
    head: { kernel: tensor('head/kernel') as tf.Tensor2D, bias: tensor('head/bias') as tf.Tensor1D },
  };
}

/** Uploads a model's weights to the current tfjs backend. Dispose with {@link disposeParams}. */
export function createModelParams(model: Model): ModelParams {
  const { config, weights } = model;
  const shapes = new Map(weightSpecs(config).map((s) => [s.name, s.shape]));
  return assembleParams(config, (name) => tensorOf(weights, name, shapes.get(name) as number[]));
}

function paramTensors(params: ModelParams): [string, tf.Tensor][] {
  const out: [string, tf.Tensor][] = [];
  params.dense.forEach((layer, i) => {
    out.push([denseKernelName(i), layer.kernel], [denseBiasName(i), layer.bias]);
  });
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
