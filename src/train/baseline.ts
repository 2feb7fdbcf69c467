import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { BraidError } from '../core/errors.js';
import type { ModelConfig } from '../model/config.js';
import { tf } from '../model/tfjs.js';
import { mulberry32 } from '../model/weights.js';
import { crossEntropySum, groups } from './batches.js';
import type { Sequence } from './dataset.js';
import type { Learner } from './fit.js';
import { scoreLogits, withL2 } from './recurrent.js';
import { shuffleInPlace } from './shuffle.js';

/**
 * The memoryless baseline: each window scored from its own fused features only, by a one-hidden-layer ReLU MLP
 * (or logistic regression with hidden = 0) on the same normalised inputs as the recurrent model. Whatever the
 * recurrent model gains over it comes from memory.
 */
export interface BaselineConfig {
  readonly kind: 'mlp';
  readonly hidden: number;
  readonly inputWidth: number;
  readonly labels: readonly string[];
  readonly normalization: ModelConfig['normalization'];
}

export interface Baseline {
  readonly config: BaselineConfig;
  readonly weights: Readonly<Record<string, Float32Array>>;
}

export const BASELINE_DIR = 'baseline';
const BASELINE_JSON = 'baseline.json';
const BASELINE_BIN = 'weights.bin';

function baselineSpecs(config: BaselineConfig): { name: string; shape: number[] }[] {
  const { hidden, inputWidth } = config;
  const L = config.labels.length;
  if (hidden === 0)
    return [
      { name: 'head/kernel', shape: [inputWidth, L] },
      { name: 'head/bias', shape: [L] },
    ];
  return [
    { name: 'dense/kernel', shape: [inputWidth, hidden] },
    { name: 'dense/bias', shape: [hidden] },
    { name: 'head/kernel', shape: [hidden, L] },
    { name: 'head/bias', shape: [L] },
  ];
}

/** Seeded Glorot-uniform kernels, zero biases. */
export function initialBaseline(config: BaselineConfig, seed: number): Baseline {
  const next = mulberry32(seed);
  const weights: Record<string, Float32Array> = {};
  for (const { name, shape } of baselineSpecs(config)) {
    const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (shape.length === 2) {
      const limit = Math.sqrt(6 / ((shape[0] as number) + (shape[1] as number)));
      for (let i = 0; i < values.length; i++) values[i] = (next() * 2 - 1) * limit;
    }
    weights[name] = values;
  }
  return { config, weights };
}

let baselineCount = 0;

/** The baseline's weights as named tf.Variables plus its forward pass. */
export class TrainableBaseline {
  readonly variables: tf.Variable[];
  readonly #byName = new Map<string, tf.Variable>();
  readonly #mean: tf.Tensor1D;
  readonly #std: tf.Tensor1D;

  constructor(readonly baseline: Baseline) {
    const prefix = `braid-baseline-${++baselineCount}`;
    for (const { name, shape } of baselineSpecs(baseline.config))
      this.#byName.set(
        name,
        tf.tidy(() =>
          tf.variable(
            tf.tensor(baseline.weights[name] as Float32Array, shape, 'float32'),
            true,
            `${prefix}/${name}`,
          ),
        ),
      );
    this.variables = [...this.#byName.values()];
    this.#mean = tf.tensor1d(baseline.config.normalization.mean as number[], 'float32');
    this.#std = tf.tensor1d(baseline.config.normalization.std as number[], 'float32');
  }

  /** Logits [N, L] of windows x [N, F]. */
  forward(x: tf.Tensor2D): tf.Tensor2D {
    const v = (name: string) => this.#byName.get(name) as tf.Variable;
    return tf.tidy(() => {
      let h: tf.Tensor2D = tf.div(tf.sub(x, this.#mean), this.#std);
      if (this.baseline.config.hidden > 0)
        h = tf.relu(tf.add(tf.matMul(h, v('dense/kernel') as tf.Tensor2D), v('dense/bias'))) as tf.Tensor2D;
      return tf.add(tf.matMul(h, v('head/kernel') as tf.Tensor2D), v('head/bias'));
    });
  }

  get kernels(): tf.Variable[] {
    return [...this.#byName.entries()].filter(([name]) => name.endsWith('/kernel')).map(([, v]) => v);
  }

  toBaseline(): Baseline {
    const weights: Record<string, Float32Array> = {};
    for (const [name, variable] of this.#byName) weights[name] = new Float32Array(variable.dataSync());
    return { config: this.baseline.config, weights };
  }

  dispose(): void {
    tf.dispose([this.#mean, this.#std, ...this.variables]);
  }
}

/** Logits of every window of every sequence, [windows × labels] per sequence. */
export function baselineLogits(model: TrainableBaseline, sequences: readonly Sequence[]): Float32Array[] {
  const F = model.baseline.config.inputWidth;
  return sequences.map((s) =>
    tf.tidy(() => {
      const logits = model.forward(tf.tensor2d(s.x, [s.windows.length, F]));
      return new Float32Array(logits.dataSync());
    }),
  );
}

/** Minibatches of single windows drawn across all training sequences, reshuffled every epoch. */
export class BaselineLearner implements Learner {
  readonly variables: readonly tf.Variable[];
  readonly #x: Float32Array;
  readonly #y: Float32Array;
  readonly #w: Float32Array;
  readonly #rows: number;
  readonly #random: () => number;

  constructor(
    readonly model: TrainableBaseline,
    train: readonly Sequence[],
    readonly validation: readonly Sequence[],
    readonly options: { readonly batchSize: number; readonly seed: number; readonly l2?: number },
  ) {
    this.variables = model.variables;
    const { inputWidth: F, labels } = model.baseline.config;
    this.#rows = train.reduce((n, s) => n + s.windows.length, 0);
    this.#x = new Float32Array(this.#rows * F);
    this.#y = new Float32Array(this.#rows * labels.length);
    this.#w = new Float32Array(this.#rows).fill(1);
    let offset = 0;
    for (const s of train) {
      this.#x.set(s.x, offset * F);
      this.#y.set(s.y, offset * labels.length);
      if (s.weights) this.#w.set(s.weights, offset);
      offset += s.windows.length;
    }
    this.#random = mulberry32(options.seed);
  }

  trainEpoch(_epoch: number, update: (loss: () => tf.Scalar) => void): void {
    const { inputWidth: F, labels } = this.model.baseline.config;
    const L = labels.length;
    const order = shuffleInPlace(
      Array.from({ length: this.#rows }, (_, i) => i),
      this.#random,
    );
    for (const rows of groups(order, this.options.batchSize)) {
      const x = new Float32Array(rows.length * F);
      const y = new Float32Array(rows.length * L);
      const w = new Float32Array(rows.length * L);
      let weight = 0;
      rows.forEach((r, i) => {
        x.set(this.#x.subarray(r * F, (r + 1) * F), i * F);
        for (let l = 0; l < L; l++) {
          const target = this.#y[r * L + l] as number;
          if (Number.isNaN(target)) continue;
          y[i * L + l] = target;
          w[i * L + l] = this.#w[r] as number;
          weight++;
        }
      });
      if (weight === 0) continue;
      const xs = tf.tensor2d(x, [rows.length, F]);
      const ys = tf.tensor2d(y, [rows.length, L]);
      const ws = tf.tensor2d(w, [rows.length, L]);
      update(() => {
        const loss = tf.losses.sigmoidCrossEntropy(
          ys,
          this.model.forward(xs),
          ws,
          0,
          tf.Reduction.SUM_BY_NONZERO_WEIGHTS,
        ) as tf.Scalar;
        return withL2(loss, this.model.kernels, this.options.l2 ?? 0);
      });
      tf.dispose([xs, ys, ws]);
    }
  }

  validate(): { loss: number; metric: number } | undefined {
    if (this.validation.length === 0) return undefined;
    const logits = baselineLogits(this.model, this.validation);
    return scoreLogits(logits, this.validation, this.model.baseline.config.labels);
  }
}

/** Mean cross-entropy of a baseline on sequences (for reports). */
export function baselineLoss(model: TrainableBaseline, sequences: readonly Sequence[]): number {
  const logits = baselineLogits(model, sequences);
  let sum = 0;
  let count = 0;
  sequences.forEach((s, i) => {
    const part = crossEntropySum(logits[i] as Float32Array, s.y);
    sum += part.sum;
    count += part.count;
  });
  return count === 0 ? 0 : sum / count;
}

const baselineJsonSchema = z.object({
  format: z.literal('braid-baseline'),
  config: z.object({
    kind: z.literal('mlp'),
    hidden: z
      .number()
      .int()
      .min(0)
      .max(1 << 16),
    inputWidth: z.number().int().min(1),
    labels: z.array(z.string().min(1)).min(1),
    normalization: z.object({ mean: z.array(z.number()), std: z.array(z.number().positive()) }),
  }),
  weightSpecs: z.array(
    z.object({ name: z.string(), shape: z.array(z.number().int().min(0)), dtype: z.literal('float32') }),
  ),
});

/** Writes the baseline under `<modelDir>/baseline/` (JSON config and manifest, tfjs-encoded weights). */
export async function saveBaseline(baseline: Baseline, modelDir: string): Promise<void> {
  const dir = path.join(modelDir, BASELINE_DIR);
  const tensors = baselineSpecs(baseline.config).map(({ name, shape }) => ({
    name,
    tensor: tf.tensor(baseline.weights[name] as Float32Array, shape, 'float32'),
  }));
  try {
    const { data, specs } = await tf.io.encodeWeights(tensors);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, BASELINE_BIN), new Uint8Array(tf.io.CompositeArrayBuffer.join(data)));
    const json = { format: 'braid-baseline', config: baseline.config, weightSpecs: specs };
    await writeFile(path.join(dir, BASELINE_JSON), `${JSON.stringify(json)}\n`);
  } finally {
    tf.dispose(tensors.map((t) => t.tensor));
  }
}

/** Reads a baseline saved by {@link saveBaseline}; BRAID_ERR_MODEL names what is missing or wrong. */
export async function loadBaseline(modelDir: string): Promise<Baseline> {
  const dir = path.join(modelDir, BASELINE_DIR);
  let json: unknown;
  let bytes: Buffer;
  try {
    json = JSON.parse(await readFile(path.join(dir, BASELINE_JSON), 'utf8'));
    bytes = await readFile(path.join(dir, BASELINE_BIN));
  } catch (error) {
    throw new BraidError(
      'BRAID_ERR_MODEL',
      `model "${modelDir}" has no readable memoryless baseline in ${BASELINE_DIR}/ (braid train writes one): ${(error as Error).message}`,
      { cause: error },
    );
  }
  const parsed = baselineJsonSchema.safeParse(json);
  if (!parsed.success)
    throw new BraidError(
      'BRAID_ERR_MODEL',
      `${path.join(dir, BASELINE_JSON)} is not a braid baseline: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  const { config, weightSpecs } = parsed.data;
  const expected = baselineSpecs(config);
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const decoded = tf.io.decodeWeights(buffer, weightSpecs);
  const weights: Record<string, Float32Array> = {};
  try {
    for (const spec of expected) {
      const t = decoded[spec.name];
      if (t === undefined || t.shape.join(',') !== spec.shape.join(','))
        throw new BraidError(
          'BRAID_ERR_MODEL',
          `${path.join(dir, BASELINE_JSON)}: weight ${spec.name} must have shape [${spec.shape.join(', ')}]`,
        );
      weights[spec.name] = new Float32Array(t.dataSync());
    }
  } finally {
    tf.dispose(Object.values(decoded));
  }
  return { config, weights };
}
