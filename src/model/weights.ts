import { BraidError } from '../core/errors.js';
import { mulberry32 } from '../core/random.js';
import {
  FEATURE_MODALITIES,
  type FeatureModality,
  gruResetsAfter,
  type ModelConfig,
  modelDims,
} from './config.js';

/**
 * Weights by name, each a row-major Float32Array. Names and shapes follow Keras so weights can be compared with a
 * Keras model: `cell/kernel` [F, G], `cell/recurrent_kernel` [H, G], `cell/bias` [2, 3H] for a GRU with
 * reset_after (input bias row then recurrent bias row), [3H] for one without, or [4H] for an LSTM; gate columns
 * z, r, h (GRU) or i, f, c, o (LSTM). A fused encoder's layers are `encoder/dense<i>/kernel` [in, units] and
 * `encoder/dense<i>/bias` [units].
 */
export type ModelWeights = Readonly<Record<string, Float32Array>>;

export interface WeightSpec {
  readonly name: string;
  readonly shape: readonly number[];
}

/** A config with weights whose names and shapes were checked against it. */
export interface Model {
  readonly config: ModelConfig;
  readonly weights: ModelWeights;
}

export const encoderKernelName = (m: FeatureModality): string => `encoder/${m}/kernel`;
export const encoderBiasName = (m: FeatureModality): string => `encoder/${m}/bias`;
export const denseKernelName = (layer: number): string => `encoder/dense${layer}/kernel`;
export const denseBiasName = (layer: number): string => `encoder/dense${layer}/bias`;

/** The weights a config needs, in the order they are saved. */
export function weightSpecs(config: ModelConfig): WeightSpec[] {
  const d = modelDims(config);
  const specs: WeightSpec[] = [];
  let inputs = d.input;
  config.fusedEncoder?.forEach((layer, i) => {
    specs.push({ name: denseKernelName(i), shape: [inputs, layer.units] });
    specs.push({ name: denseBiasName(i), shape: [layer.units] });
    inputs = layer.units;
  });
  // With a fused encoder every modality's units are 0 (checked by parseModelConfig), so this adds nothing.
  for (const m of FEATURE_MODALITIES) {
    if (config.encoderUnits[m] === 0) continue;
    specs.push({ name: encoderKernelName(m), shape: [config.inputLayout[m], config.encoderUnits[m]] });
    specs.push({ name: encoderBiasName(m), shape: [config.encoderUnits[m]] });
  }
  specs.push({ name: 'cell/kernel', shape: [d.cellInput, d.gates] });
  specs.push({ name: 'cell/recurrent_kernel', shape: [d.hidden, d.gates] });
  const twoBiases = config.cell === 'gru' && gruResetsAfter(config);
  specs.push({ name: 'cell/bias', shape: twoBiases ? [2, d.gates] : [d.gates] });
  specs.push({ name: 'head/kernel', shape: [d.hidden, d.labels] });
  specs.push({ name: 'head/bias', shape: [d.labels] });
  return specs;
}

const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Pairs weights with their config; throws BRAID_ERR_MODEL naming any weight that is missing, extra or mis-sized. */
export function createModel(config: ModelConfig, weights: ModelWeights): Model {
  const specs = weightSpecs(config);
  const problems: string[] = [];
  for (const spec of specs) {
    const w = weights[spec.name];
    if (!w) problems.push(`missing weight ${spec.name} [${spec.shape.join(', ')}]`);
    else if (!(w instanceof Float32Array))
      problems.push(`weight ${spec.name} must be a Float32Array, got ${Object.prototype.toString.call(w)}`);
    else if (w.length !== size(spec.shape))
      problems.push(
        `weight ${spec.name} has ${w.length} values, config needs [${spec.shape.join(', ')}] = ${size(spec.shape)}`,
      );
  }
  const known = new Set(specs.map((s) => s.name));
  for (const name of Object.keys(weights)) if (!known.has(name)) problems.push(`unexpected weight ${name}`);
  if (problems.length > 0)
    throw new BraidError('BRAID_ERR_MODEL', `weights do not match the model config: ${problems.join('; ')}`);
  return { config, weights };
}

export interface RandomWeightsOptions {
  readonly seed?: number;
  /** Biases are drawn from ±biasScale (0 = zeros, the usual start for training; tests want them non-zero). */
  readonly biasScale?: number;
}

/**
 * Glorot-uniform kernels from a seeded generator, so a fresh model (or a test's) is reproducible.
 */
export function randomWeights(config: ModelConfig, options: RandomWeightsOptions = {}): ModelWeights {
  const next = mulberry32(options.seed ?? 1);
  const biasScale = options.biasScale ?? 0;
  const out: Record<string, Float32Array> = {};
  for (const spec of weightSpecs(config)) {
    const values = new Float32Array(size(spec.shape));
    const isBias = spec.name.endsWith('/bias');
    const fanIn = spec.shape[0] ?? 1;
    const fanOut = spec.shape[spec.shape.length - 1] ?? 1;
    const limit = isBias ? biasScale : Math.sqrt(6 / (fanIn + fanOut));
    for (let i = 0; i < values.length; i++) values[i] = (next() * 2 - 1) * limit;
    out[spec.name] = values;
  }
  return out;
}

/** Re-exported for callers that seed model weights and data alike. */
export { mulberry32 };
