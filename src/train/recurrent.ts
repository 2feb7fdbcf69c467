import { saveWindowing, type WindowingConfig } from '../align/windowing.js';
import type { FeatureConfig } from '../features/config.js';
import { featureLayout } from '../features/config.js';
import {
  type CellType,
  type FeatureModality,
  type ModelConfig,
  modelDims,
  parseModelConfig,
} from '../model/config.js';
import { assembleParams, forwardSequence, type ModelParams } from '../model/tf-model.js';
import { tf } from '../model/tfjs.js';
import {
  createModel,
  type Model,
  type ModelWeights,
  mulberry32,
  randomWeights,
  weightSpecs,
} from '../model/weights.js';
import { crossEntropySum, groups, packSequences, timeSlice, weightSum } from './batches.js';
import type { Sequence } from './dataset.js';
import type { Learner } from './fit.js';
import { labelMetrics, macroF1 } from './metrics.js';
import { shuffleInPlace } from './shuffle.js';

export interface Architecture {
  readonly cell: CellType;
  readonly hidden: number;
  /** Units of each modality's dense ReLU encoder. */
  readonly encoderUnits: Readonly<Record<FeatureModality, number>>;
}

/** The model config for a feature config, labels, an architecture and the training data's normalization. */
export function buildModelConfig(
  featureConfig: FeatureConfig,
  labels: readonly string[],
  architecture: Architecture,
  normalization: ModelConfig['normalization'],
  windowing?: WindowingConfig,
): ModelConfig {
  const layout = featureLayout(featureConfig);
  return parseModelConfig({
    inputLayout: { audio: layout.audio, video: layout.video, text: layout.text, mask: 3 },
    encoderUnits: architecture.encoderUnits,
    hidden: architecture.hidden,
    cell: architecture.cell,
    labels: [...labels],
    head: 'sigmoid',
    featureConfig,
    normalization,
    ...(windowing === undefined ? {} : { windowing: saveWindowing(windowing) }),
  });
}

let trainableCount = 0;

/**
 * A model's weights as tf.Variables (uniquely named, as tfjs registers variables globally) arranged as the
 * ModelParams of src/model/tf-model.ts, so training differentiates the one definition of the model's math.
 */
export class TrainableModel {
  readonly variables: tf.Variable[];
  readonly params: ModelParams;
  readonly #byName = new Map<string, tf.Variable>();

  constructor(
    readonly config: ModelConfig,
    initial: ModelWeights,
  ) {
    const prefix = `braid-train-${++trainableCount}`;
    for (const spec of weightSpecs(config))
      this.#byName.set(
        spec.name,
        tf.tidy(() =>
          tf.variable(
            tf.tensor(initial[spec.name] as Float32Array, [...spec.shape], 'float32'),
            true,
            `${prefix}/${spec.name}`,
          ),
        ),
      );
    this.variables = [...this.#byName.values()];
    this.params = assembleParams(config, (name) => this.#byName.get(name) as tf.Variable);
  }

  /** A fresh model with seeded Glorot-uniform kernels and zero biases. */
  static initial(config: ModelConfig, seed: number): TrainableModel {
    return new TrainableModel(config, randomWeights(config, { seed }));
  }

  /** The kernels (weight matrices), which an L2 penalty applies to; biases are left free. */
  get kernels(): tf.Variable[] {
    return [...this.#byName.entries()].filter(([name]) => !name.endsWith('/bias')).map(([, v]) => v);
  }

  weights(): ModelWeights {
    const out: Record<string, Float32Array> = {};
    for (const [name, variable] of this.#byName) out[name] = new Float32Array(variable.dataSync());
    return out;
  }

  toModel(): Model {
    return createModel(this.config, this.weights());
  }

  dispose(): void {
    tf.dispose([this.params.mean, this.params.std, ...this.variables]);
  }
}

export interface SequenceRunOptions {
  /** Sequences run side by side. */
  readonly batchSize?: number;
  /** Windows per forward call; the state is carried across calls. */
  readonly chunk?: number;
}

/**
 * The model's logits for every window of every sequence, running each from a zero state as the live runtime does
 * for a new stream: [windows × labels] per sequence, in input order.
 */
export function sequenceLogits(
  params: ModelParams,
  config: ModelConfig,
  sequences: readonly Sequence[],
  options: SequenceRunOptions = {},
): Float32Array[] {
  const dims = modelDims(config);
  const L = dims.labels;
  const chunk = options.chunk ?? 100;
  const out: Float32Array[] = [];
  for (const group of groups(sequences, options.batchSize ?? 32)) {
    const packed = packSequences(group, dims.input, L);
    const B = group.length;
    const logits = new Float32Array(B * packed.steps * L);
    let state = tf.zeros([B, dims.state]) as tf.Tensor2D;
    for (let t0 = 0; t0 < packed.steps; t0 += chunk) {
      const t1 = Math.min(t0 + chunk, packed.steps);
      const part = timeSlice(packed, t0, t1);
      const previous = state;
      const result = tf.tidy(() => {
        const r = forwardSequence(params, config, tf.tensor3d(part.x, [B, t1 - t0, dims.input]), previous);
        return { logits: r.logits, state: r.state };
      });
      const values = result.logits.dataSync();
      for (let b = 0; b < B; b++)
        logits.set(values.subarray(b * (t1 - t0) * L, (b + 1) * (t1 - t0) * L), (b * packed.steps + t0) * L);
      tf.dispose([previous, result.logits]);
      state = result.state;
    }
    state.dispose();
    group.forEach((s, b) => {
      out.push(logits.slice(b * packed.steps * L, (b * packed.steps + s.windows.length) * L));
    });
  }
  return out;
}

/** loss + l2 × Σ‖W‖² over the kernels (the loss itself when l2 is 0). */
export function withL2(loss: tf.Scalar, kernels: readonly tf.Tensor[], l2: number): tf.Scalar {
  if (l2 === 0 || kernels.length === 0) return loss;
  return tf.add(loss, tf.mul(l2, tf.addN(kernels.map((k) => tf.sum(tf.square(k)))))) as tf.Scalar;
}

export const sigmoid = (logits: Float32Array): Float32Array => logits.map((z) => 1 / (1 + Math.exp(-z)));

/** Loss and mean F1 of logits against the sequences' targets. */
export function scoreLogits(
  logits: readonly Float32Array[],
  sequences: readonly Sequence[],
  labels: readonly string[],
): { loss: number; metric: number } {
  let sum = 0;
  let count = 0;
  sequences.forEach((s, i) => {
    const part = crossEntropySum(logits[i] as Float32Array, s.y);
    sum += part.sum;
    count += part.count;
  });
  const metrics = labelMetrics(
    sequences.map((s, i) => ({ scores: sigmoid(logits[i] as Float32Array), targets: s.y })),
    labels,
  );
  return { loss: count === 0 ? 0 : sum / count, metric: macroF1(metrics) };
}

export interface RecurrentLearnerOptions {
  /** Windows per truncated back-propagation chunk. */
  readonly chunk: number;
  /** Sequences per minibatch. */
  readonly batchSize: number;
  /** Seeds the order of sequences in each epoch. */
  readonly seed: number;
  /** L2 penalty on kernels (not biases), added to the loss: l2 × Σ w². */
  readonly l2?: number;
}

/**
 * Truncated back-propagation through time: each minibatch of sequences is cut into chunks of `chunk` windows; the
 * loss of one chunk is differentiated with the state that the previous chunk ended in as a constant input (carried,
 * not back-propagated through), and the state is reset to zero between minibatches, i.e. between sequences.
 */
export class RecurrentLearner implements Learner {
  readonly variables: readonly tf.Variable[];
  readonly #random: () => number;

  constructor(
    readonly model: TrainableModel,
    readonly train: readonly Sequence[],
    readonly validation: readonly Sequence[],
    readonly options: RecurrentLearnerOptions,
  ) {
    this.variables = model.variables;
    this.#random = mulberry32(options.seed);
  }

  trainEpoch(_epoch: number, update: (loss: () => tf.Scalar) => void): void {
    const { config, params } = this.model;
    const dims = modelDims(config);
    const order = shuffleInPlace([...this.train], this.#random);
    for (const group of groups(order, this.options.batchSize)) {
      const packed = packSequences(group, dims.input, dims.labels);
      const B = group.length;
      let state = tf.zeros([B, dims.state]) as tf.Tensor2D;
      try {
        for (let t0 = 0; t0 < packed.steps; t0 += this.options.chunk) {
          const t1 = Math.min(t0 + this.options.chunk, packed.steps);
          const part = timeSlice(packed, t0, t1);
          const n = t1 - t0;
          const xs = tf.tensor3d(part.x, [B, n, dims.input]);
          const previous = state;
          let next: tf.Tensor2D | undefined;
          if (weightSum(part) === 0) {
            // No target in this chunk (labels not started yet): only advance the state.
            next = tf.tidy(() => forwardSequence(params, config, xs, previous).state);
          } else {
            const ys = tf.tensor3d(part.y, [B, n, dims.labels]);
            const ws = tf.tensor3d(part.w, [B, n, dims.labels]);
            update(() => {
              const out = forwardSequence(params, config, xs, previous);
              next = tf.keep(out.state);
              const loss = tf.losses.sigmoidCrossEntropy(
                ys,
                out.logits,
                ws,
                0,
                tf.Reduction.SUM_BY_NONZERO_WEIGHTS,
              ) as tf.Scalar;
              return withL2(loss, this.model.kernels, this.options.l2 ?? 0);
            });
            tf.dispose([ys, ws]);
          }
          tf.dispose([xs, previous]);
          if (next === undefined) return;
          state = next;
        }
      } finally {
        state.dispose();
      }
    }
  }

  validate(): { loss: number; metric: number } | undefined {
    if (this.validation.length === 0) return undefined;
    const logits = sequenceLogits(this.model.params, this.model.config, this.validation);
    return scoreLogits(logits, this.validation, this.model.config.labels);
  }
}
