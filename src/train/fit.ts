import { tf } from '../model/tfjs.js';
import './tf-setup.js';

export type OptimizerName = 'adam' | 'sgd';

export interface FitOptions {
  readonly maxEpochs: number;
  /** Epochs without a validation improvement before stopping (needs a learner that validates). */
  readonly patience: number;
  /** Smallest drop in validation loss that counts as an improvement. Default 0. */
  readonly minDelta?: number;
  readonly learningRate: number;
  readonly optimizer: OptimizerName;
  /** Largest global gradient norm; a larger gradient is scaled down to it. Infinity turns clipping off. */
  readonly clipnorm: number;
  readonly onEpoch?: (record: EpochRecord) => void;
}

export interface EpochRecord {
  readonly epoch: number;
  /** Mean loss of the epoch's updates (each on the weights before it). */
  readonly trainLoss: number;
  readonly valLoss?: number;
  /** Mean F1 over labels on the validation data. */
  readonly valMetric?: number;
  readonly updates: number;
  /** Largest global gradient norm seen, before clipping. */
  readonly maxGradNorm: number;
  /** Updates whose gradient was scaled down. */
  readonly clipped: number;
  readonly seconds: number;
}

export type StopReason = 'early_stopping' | 'max_epochs' | 'diverged';

export interface FitResult {
  readonly history: readonly EpochRecord[];
  /** The epoch whose weights the variables hold at the end: the best validation epoch, or the last one. */
  readonly bestEpoch: number;
  readonly bestValLoss?: number;
  readonly stopReason: StopReason;
  /** The best epoch's weights were put back after later epochs did worse. */
  readonly restored: boolean;
}

/** What the loop trains: it owns the variables, the data and the forward pass; the loop owns the optimisation. */
export interface Learner {
  readonly variables: readonly tf.Variable[];
  /** One pass over the training data, calling `update` with each minibatch's loss (a scalar tfjs function). */
  trainEpoch(epoch: number, update: (loss: () => tf.Scalar) => void): void;
  /** Validation loss (lower is better) and mean F1, or absent without validation data. */
  validate?(): { loss: number; metric: number } | undefined;
}

/**
 * Scales gradients so their global L2 norm (over all tensors together) is at most `clipnorm`, keeping their
 * direction; returns the scaled gradients (new tensors) and the norm before scaling.
 */
export function clipByGlobalNorm(
  grads: Readonly<Record<string, tf.Tensor>>,
  clipnorm: number,
): { grads: Record<string, tf.Tensor>; norm: number } {
  const tensors = Object.values(grads);
  const norm = tf.tidy(
    () => tf.sqrt(tf.addN(tensors.map((g) => tf.sum(tf.square(g))))).dataSync()[0] as number,
  );
  const scale = Number.isFinite(norm) && norm > clipnorm ? clipnorm / norm : 1;
  const out: Record<string, tf.Tensor> = {};
  for (const [name, g] of Object.entries(grads)) out[name] = scale === 1 ? tf.clone(g) : tf.mul(g, scale);
  return { grads: out, norm };
}

function createOptimizer(name: OptimizerName, learningRate: number): tf.Optimizer {
  return name === 'adam' ? tf.train.adam(learningRate) : tf.train.sgd(learningRate);
}

const snapshot = (variables: readonly tf.Variable[]): Float32Array[] =>
  variables.map((v) => new Float32Array(v.dataSync()));

function restore(variables: readonly tf.Variable[], values: readonly Float32Array[]): void {
  variables.forEach((v, i) => {
    tf.tidy(() => v.assign(tf.tensor(values[i] as Float32Array, v.shape, 'float32')));
  });
}

const allFinite = (variables: readonly tf.Variable[]): boolean =>
  tf.tidy(() => {
    const total = tf.addN(variables.map((v) => tf.sum(tf.abs(v))));
    return Number.isFinite(total.dataSync()[0]);
  });

/**
 * The training loop shared by the recurrent model and the memoryless baseline: per update, gradients by tfjs
 * autodiff, global-norm clipping, one optimizer step; per epoch, validation, early stopping with patience, and at
 * the end the best epoch's weights put back. A non-finite loss, gradient norm or weight stops the run as `diverged`
 * (the update that would have applied it is skipped) and the last good weights are restored when validation kept them.
 */
export function trainLoop(learner: Learner, options: FitOptions): FitResult {
  const { maxEpochs, patience, clipnorm } = options;
  const minDelta = options.minDelta ?? 0;
  const optimizer = createOptimizer(options.optimizer, options.learningRate);
  const variables = learner.variables;
  const history: EpochRecord[] = [];
  let best: { epoch: number; loss: number; weights: Float32Array[] } | undefined;
  let stopReason: StopReason = 'max_epochs';
  let waited = 0;
  try {
    for (let epoch = 1; epoch <= maxEpochs; epoch++) {
      const t0 = performance.now();
      let lossSum = 0;
      let updates = 0;
      let maxGradNorm = 0;
      let clipped = 0;
      let diverged = false;
      learner.trainEpoch(epoch, (lossFn) => {
        if (diverged) return;
        const { value, grads } = tf.variableGrads(lossFn, [...variables]);
        const loss = value.dataSync()[0] as number;
        const scaled = clipByGlobalNorm(grads, clipnorm);
        tf.dispose([value, ...Object.values(grads)]);
        if (!Number.isFinite(loss) || !Number.isFinite(scaled.norm)) {
          diverged = true;
          tf.dispose(Object.values(scaled.grads));
          return;
        }
        if (scaled.norm > clipnorm) clipped++;
        maxGradNorm = Math.max(maxGradNorm, scaled.norm);
        optimizer.applyGradients(scaled.grads);
        tf.dispose(Object.values(scaled.grads));
        lossSum += loss;
        updates++;
      });
      if (!diverged && !allFinite(variables)) diverged = true;
      const validation = diverged ? undefined : learner.validate?.();
      if (validation !== undefined && !Number.isFinite(validation.loss)) diverged = true;
      const record: EpochRecord = {
        epoch,
        trainLoss: diverged ? Number.NaN : updates > 0 ? lossSum / updates : 0,
        ...(validation && { valLoss: validation.loss, valMetric: validation.metric }),
        updates,
        maxGradNorm,
        clipped,
        seconds: (performance.now() - t0) / 1000,
      };
      history.push(record);
      options.onEpoch?.(record);
      if (diverged) {
        stopReason = 'diverged';
        break;
      }
      if (validation === undefined) continue;
      if (best === undefined || validation.loss < best.loss - minDelta) {
        best = { epoch, loss: validation.loss, weights: snapshot(variables) };
        waited = 0;
      } else if (++waited >= patience) {
        stopReason = 'early_stopping';
        break;
      }
    }
  } finally {
    optimizer.dispose();
  }
  const last = history.length;
  if (best !== undefined) {
    const restored = best.epoch !== last || stopReason === 'diverged';
    if (restored) restore(variables, best.weights);
    return { history, bestEpoch: best.epoch, bestValLoss: best.loss, stopReason, restored };
  }
  return { history, bestEpoch: stopReason === 'diverged' ? last - 1 : last, stopReason, restored: false };
}
