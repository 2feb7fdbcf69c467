import type { WindowingConfig } from '../align/windowing.js';
import {
  DENSE_ACTIVATIONS,
  type DenseActivation,
  type DenseLayerConfig,
  type HeadType,
  type InputLayout,
  type ModelConfig,
  parseModelConfig,
} from '../model/config.js';
import { createModel, denseBiasName, denseKernelName, type Model } from '../model/weights.js';
import { InteropError } from './errors.js';
import { activationName, type KerasChain, type KerasLayer, parseTopology } from './keras-topology.js';
import type { LayersModelFiles, LayersWeight } from './layers-files.js';
import { windowingJson } from './windowing.js';

/** What the imported model is fed: the features, layout, labels and windowing of the windows it was trained on. */
export interface ImportFeatures {
  readonly featureConfig: unknown;
  readonly inputLayout: InputLayout;
  readonly labels: readonly string[];
  readonly windowing: WindowingConfig;
}

/** How each Keras layer was mapped, for the import report. */
export interface LayerMapping {
  readonly layer: string;
  readonly className: string;
  readonly mappedTo: string;
}

export interface ImportedModel {
  readonly model: Model;
  readonly layers: readonly LayerMapping[];
}

export interface KerasImportOptions {
  /**
   * The exact normalization a braid export carries in its metadata, used instead of the BatchNormalization values
   * when those are its float32 rounding (an unchanged `braid export-model` file): import gives back the model bit
   * for bit. Anything else is ignored.
   */
  readonly exactNormalization?: { readonly mean: readonly number[]; readonly std: readonly number[] };
}

/** Keras' backend.epsilon(): Normalization divides by max(sqrt(variance), epsilon). */
const KERAS_EPSILON = 1e-7;

const refuse = (
  layer: KerasLayer,
  reason: 'unsupported_layer' | 'unsupported_setting',
  why: string,
): never => {
  throw new InteropError(reason, `layer ${layer.label}: ${why}`, layer.name);
};

const shapeError = (layer: KerasLayer, why: string): never => {
  throw new InteropError('shape_mismatch', `layer ${layer.label}: ${why}`, layer.name);
};

/**
 * The weight of a layer whose name ends in `leaf`: Keras and the converter store `layer/leaf`,
 * `layer/cell/leaf` (TF ≥ 2.2 recurrent cells) or `model/layer/…/leaf`. Undefined when absent.
 */
function findWeight(
  weights: readonly LayersWeight[],
  layer: KerasLayer,
  leaf: string,
): LayersWeight | undefined {
  const matches = weights.filter((w) => {
    const parts = w.name.replace(/:\d+$/, '').split('/');
    return parts.length >= 2 && parts[parts.length - 1] === leaf && parts.slice(0, -1).includes(layer.name);
  });
  if (matches.length > 1)
    throw new InteropError(
      'bad_file',
      `layer ${layer.label}: ${matches.length} weights could be its ${leaf} (${matches.map((m) => m.name).join(', ')})`,
      layer.name,
    );
  return matches[0];
}

function weight(
  weights: readonly LayersWeight[],
  layer: KerasLayer,
  leaf: string,
  shape: readonly number[],
): Float32Array {
  const w = findWeight(weights, layer, leaf);
  if (w === undefined)
    throw new InteropError(
      'shape_mismatch',
      `layer ${layer.label}: no weight "${layer.name}/…/${leaf}" in the weights manifest (it has: ${weights.map((x) => x.name).join(', ') || 'none'})`,
      layer.name,
    );
  const size = shape.reduce((a, b) => a * b, 1);
  if (w.values.length !== size)
    shapeError(layer, `weight ${w.name} has shape [${w.shape.join(', ')}], expected [${shape.join(', ')}]`);
  return w.values;
}

const flag = (config: Readonly<Record<string, unknown>>, key: string, fallback: boolean): boolean =>
  typeof config[key] === 'boolean' ? (config[key] as boolean) : fallback;

const positiveInt = (layer: KerasLayer, key: string): number => {
  const v = layer.config[key];
  if (!Number.isSafeInteger(v) || (v as number) < 1)
    shapeError(layer, `${key} must be a whole number ≥ 1, got ${String(v)}`);
  return v as number;
};

/** Normalization axis: the last one (-1, [-1], [2] or 2 for [batch, time, features]). */
function checkLastAxis(layer: KerasLayer): void {
  const axis = layer.config['axis'];
  const list = Array.isArray(axis) ? axis : [axis];
  if (list.length !== 1 || !(list[0] === -1 || list[0] === 2))
    refuse(
      layer,
      'unsupported_setting',
      `axis ${JSON.stringify(axis)}: braid normalizes each feature, axis -1`,
    );
}

/** Values of a Normalization mean/variance: from its config (adapted before saving) or its weights; one or F. */
function normalizationValues(
  layer: KerasLayer,
  weights: readonly LayersWeight[],
  key: 'mean' | 'variance',
  width: number,
): number[] {
  const fromConfig = layer.config[key];
  let values: number[];
  if (typeof fromConfig === 'number') values = [fromConfig];
  else if (Array.isArray(fromConfig)) values = (fromConfig as unknown[]).flat(8).map(Number);
  else {
    const w = findWeight(weights, layer, key);
    if (w === undefined)
      return shapeError(
        layer,
        `has no ${key}, neither in its config nor among the weights (adapt() it before saving)`,
      );
    values = Array.from(w.values);
  }
  if (values.length === 1) values = new Array<number>(width).fill(values[0] as number);
  if (values.length !== width)
    shapeError(layer, `${key} has ${values.length} values, the input has ${width} features`);
  if (!values.every(Number.isFinite)) shapeError(layer, `${key} holds values that are not finite`);
  return values;
}

function mapNormalization(
  layer: KerasLayer,
  weights: readonly LayersWeight[],
  width: number,
): ModelConfig['normalization'] {
  checkLastAxis(layer);
  if (layer.config['invert'] === true)
    refuse(
      layer,
      'unsupported_setting',
      'invert: true undoes a normalization; braid applies one to its inputs',
    );
  const mean = normalizationValues(layer, weights, 'mean', width);
  const variance = normalizationValues(layer, weights, 'variance', width);
  return { mean, std: variance.map((v) => Math.max(Math.sqrt(Math.max(v, 0)), KERAS_EPSILON)) };
}

/** BatchNormalization at inference: (x − moving_mean) / sqrt(moving_variance + ε) · γ + β, as braid's (x − m) / s. */
function mapBatchNormalization(
  layer: KerasLayer,
  weights: readonly LayersWeight[],
  width: number,
): ModelConfig['normalization'] {
  checkLastAxis(layer);
  const epsilon = typeof layer.config['epsilon'] === 'number' ? (layer.config['epsilon'] as number) : 1e-3;
  const movingMean = weight(weights, layer, 'moving_mean', [width]);
  const movingVariance = weight(weights, layer, 'moving_variance', [width]);
  const gamma = flag(layer.config, 'scale', true) ? weight(weights, layer, 'gamma', [width]) : undefined;
  const beta = flag(layer.config, 'center', true) ? weight(weights, layer, 'beta', [width]) : undefined;
  const mean: number[] = [];
  const std: number[] = [];
  for (let k = 0; k < width; k++) {
    const g = gamma ? (gamma[k] as number) : 1;
    if (!(g > 0))
      refuse(
        layer,
        'unsupported_setting',
        `gamma is ${g} for feature ${k}: braid's normalization divides by a positive scale`,
      );
    const s = Math.sqrt((movingVariance[k] as number) + epsilon) / g;
    if (!(s > 0) || !Number.isFinite(s))
      shapeError(
        layer,
        `feature ${k} has moving_variance ${movingVariance[k]} and epsilon ${epsilon}: no positive scale`,
      );
    std.push(s);
    mean.push((movingMean[k] as number) - (beta ? (beta[k] as number) : 0) * s);
  }
  return { mean, std };
}

const RECURRENT = new Set(['GRU', 'LSTM', 'CuDNNGRU', 'CuDNNLSTM']);
const IDENTITY_AT_INFERENCE = new Set([
  'Dropout',
  'SpatialDropout1D',
  'GaussianNoise',
  'GaussianDropout',
  'AlphaDropout',
]);

function checkRecurrent(layer: KerasLayer): void {
  const c = layer.config;
  const activation = activationName(c['activation'] ?? 'tanh');
  if (activation !== 'tanh')
    refuse(layer, 'unsupported_setting', `activation "${activation}": braid's cell computes tanh`);
  const recurrent = activationName(c['recurrent_activation'] ?? 'sigmoid');
  if (recurrent !== 'sigmoid')
    refuse(
      layer,
      'unsupported_setting',
      `recurrent_activation "${recurrent}": braid's cell computes sigmoid (tfjs-layers defaults to hard_sigmoid; set recurrentActivation: 'sigmoid')`,
    );
  if (c['return_sequences'] !== true)
    refuse(
      layer,
      'unsupported_setting',
      'return_sequences is false: the model scores a whole sequence once, braid scores every window; train it with return_sequences=True',
    );
  if (c['return_state'] === true)
    refuse(
      layer,
      'unsupported_setting',
      'return_state: true gives the model a second output; braid reads one',
    );
  if (c['go_backwards'] === true)
    refuse(
      layer,
      'unsupported_setting',
      'go_backwards: true reads windows that have not happened yet; braid scores each window as it closes',
    );
  if (c['time_major'] === true)
    refuse(layer, 'unsupported_setting', 'time_major: true; braid feeds [batch, time, features]');
}

function refuseOther(layer: KerasLayer, rnn: KerasLayer | undefined): never {
  if (layer.className === 'Bidirectional')
    return refuse(
      layer,
      'unsupported_layer',
      'a Bidirectional layer reads each sequence backwards too, which needs windows that have not happened yet; braid scores each window as it closes',
    );
  if (RECURRENT.has(layer.className) && rnn)
    return refuse(
      layer,
      'unsupported_layer',
      `stacked recurrent layers: braid runs one GRU or LSTM per stream, and ${rnn.label} is already one`,
    );
  if (layer.className === 'Masking')
    return refuse(layer, 'unsupported_layer', 'Masking skips timesteps; braid steps every window');
  return refuse(
    layer,
    'unsupported_layer',
    `braid maps an optional Normalization (or BatchNormalization), Dense or TimeDistributed(Dense) encoders, one GRU or LSTM, and a Dense head with sigmoid or softmax (Dropout is ignored: it does nothing at inference); ${layer.className} ${rnn ? 'after the recurrent layer' : 'is none of them'}`,
  );
}

interface DenseStage {
  readonly layer: KerasLayer;
  activation: string;
  /** The Activation layer merged into it, if any. */
  merged?: KerasLayer;
}

/** The layers sorted into braid's stages, in order; refuses anything out of place. */
function stages(chain: KerasChain): {
  normalization?: KerasLayer;
  encoders: DenseStage[];
  rnn: KerasLayer;
  head: DenseStage;
  ignored: KerasLayer[];
} {
  let normalization: KerasLayer | undefined;
  const encoders: DenseStage[] = [];
  let rnn: KerasLayer | undefined;
  let head: DenseStage | undefined;
  const ignored: KerasLayer[] = [];
  for (const layer of chain.layers) {
    const c = layer.className;
    if (layer.wrapper !== undefined && c !== 'Dense')
      refuse(
        layer,
        'unsupported_layer',
        `braid maps ${layer.wrapper}(Dense) only, not ${layer.wrapper}(${c})`,
      );
    if (IDENTITY_AT_INFERENCE.has(c)) {
      ignored.push(layer);
      continue;
    }
    if (c === 'InputLayer') refuse(layer, 'unsupported_layer', 'an InputLayer inside the model');
    if (c === 'Normalization' || c === 'BatchNormalization') {
      if (normalization || encoders.length > 0 || rnn)
        refuse(
          layer,
          'unsupported_layer',
          `braid normalizes the input once, before everything else; this ${c} comes after ${(normalization ?? encoders[encoders.length - 1]?.layer ?? rnn)?.label}`,
        );
      normalization = layer;
      continue;
    }
    if (c === 'Activation') {
      // Dense(…) then Activation(…) is one Dense layer with that activation.
      const last = rnn ? head : encoders[encoders.length - 1];
      if (last === undefined || last.activation !== 'linear' || last.merged !== undefined)
        refuse(
          layer,
          'unsupported_layer',
          'an Activation layer is mapped only right after a Dense layer without activation',
        );
      else {
        last.activation = activationName(layer.config['activation']);
        last.merged = layer;
      }
      continue;
    }
    if (c === 'Dense') {
      const stage = { layer, activation: activationName(layer.config['activation']) };
      if (!rnn) encoders.push(stage);
      else if (!head) head = stage;
      else
        refuse(
          layer,
          'unsupported_layer',
          `braid's head is one Dense layer after the recurrent layer, and ${head.layer.label} is already it`,
        );
      continue;
    }
    if (RECURRENT.has(c) && !rnn) {
      if (c.startsWith('CuDNN'))
        refuse(
          layer,
          'unsupported_layer',
          `${c} is Keras 1/2's GPU-only layer; use GRU(reset_after=True) or LSTM, which load its weights`,
        );
      rnn = layer;
      continue;
    }
    refuseOther(layer, rnn);
  }
  if (!rnn)
    throw new InteropError(
      'unsupported_layer',
      'the model has no GRU or LSTM layer: braid runs a recurrent model per stream',
    );
  if (!head)
    throw new InteropError(
      'unsupported_layer',
      `nothing follows ${rnn.label}: braid needs a Dense head with sigmoid or softmax after the recurrent layer`,
      rnn.name,
    );
  return { ...(normalization ? { normalization } : {}), encoders, rnn, head, ignored };
}

/**
 * Maps a Keras model (TensorFlow.js layers format) onto braid's model: Normalization or BatchNormalization →
 * `normalization`; Dense / TimeDistributed(Dense) layers → the fused encoder; GRU (reset_after either way) or
 * LSTM → the cell; the Dense head → `head`. The math is the fused kernel's (same gate order and formulas as Keras),
 * so nothing is approximated. Throws InteropError naming the layer for anything that does not map.
 */
export function importKerasModel(
  files: LayersModelFiles,
  features: ImportFeatures,
  options: KerasImportOptions = {},
): ImportedModel {
  const chain = parseTopology(files.topology);
  const F = features.inputLayout.audio + features.inputLayout.video + features.inputLayout.text + 3;
  const shape = chain.inputShape;
  if (shape !== undefined) {
    if (shape.length !== 3)
      throw new InteropError(
        'shape_mismatch',
        `the model input has shape [${shape.map((d) => d ?? 'None').join(', ')}]; braid feeds sequences [batch, time, ${F}] (return_sequences models on 3-D input)`,
      );
    if (shape[2] !== F)
      throw new InteropError(
        'shape_mismatch',
        `the model takes ${shape[2]} features per window, the exported windows have ${F}: it was trained on other features`,
      );
  }
  const { normalization, encoders, rnn, head, ignored } = stages(chain);
  const w = files.weights;
  const mappings: LayerMapping[] = [];
  const mapped = (layer: KerasLayer, to: string): void => {
    mappings.push({
      layer: layer.name,
      className: layer.wrapper ? `${layer.wrapper}(${layer.className})` : layer.className,
      mappedTo: to,
    });
  };

  let norm: ModelConfig['normalization'] = { mean: new Array(F).fill(0), std: new Array(F).fill(1) };
  if (normalization) {
    norm =
      normalization.className === 'Normalization'
        ? mapNormalization(normalization, w, F)
        : mapBatchNormalization(normalization, w, F);
    const exact = options.exactNormalization;
    const isRounding =
      exact !== undefined &&
      normalization.className === 'BatchNormalization' &&
      exact.mean.length === F &&
      exact.std.length === F &&
      exact.mean.every((m, k) => Math.fround(m) === Math.fround(norm.mean[k] as number)) &&
      exact.std.every((s, k) => Math.abs(s - (norm.std[k] as number)) <= 1e-6 * s);
    if (isRounding) norm = { mean: [...exact.mean], std: [...exact.std] };
    mapped(
      normalization,
      isRounding ? 'normalization (exact values from the braid metadata)' : 'normalization',
    );
  }

  const weights: Record<string, Float32Array> = {};
  const fusedEncoder: DenseLayerConfig[] = [];
  let width = F;
  encoders.forEach((stage, i) => {
    const { layer } = stage;
    if (!(DENSE_ACTIVATIONS as readonly string[]).includes(stage.activation))
      refuse(
        layer,
        'unsupported_setting',
        `activation "${stage.activation}": braid's encoder layers compute ${DENSE_ACTIVATIONS.join(', ')}`,
      );
    const units = positiveInt(layer, 'units');
    weights[denseKernelName(i)] = weight(w, layer, 'kernel', [width, units]);
    weights[denseBiasName(i)] = flag(layer.config, 'use_bias', true)
      ? weight(w, layer, 'bias', [units])
      : new Float32Array(units);
    fusedEncoder.push({ units, activation: stage.activation as DenseActivation });
    mapped(layer, `fusedEncoder[${i}] (${units} units, ${stage.activation})`);
    if (stage.merged) mapped(stage.merged, `activation of fusedEncoder[${i}]`);
    width = units;
  });

  checkRecurrent(rnn);
  const cell = rnn.className === 'GRU' ? 'gru' : 'lstm';
  const H = positiveInt(rnn, 'units');
  const G = (cell === 'gru' ? 3 : 4) * H;
  weights['cell/kernel'] = weight(w, rnn, 'kernel', [width, G]);
  weights['cell/recurrent_kernel'] = weight(w, rnn, 'recurrent_kernel', [H, G]);
  let resetAfter: boolean | undefined;
  const useBias = flag(rnn.config, 'use_bias', true);
  if (cell === 'gru') {
    const bias = useBias ? findWeight(w, rnn, 'bias') : undefined;
    // The bias shape tells which GRU this is; a config that says otherwise is a broken file.
    const declared =
      typeof rnn.config['reset_after'] === 'boolean' ? (rnn.config['reset_after'] as boolean) : undefined;
    resetAfter = bias ? bias.values.length === 2 * G : (declared ?? true);
    if (declared !== undefined && declared !== resetAfter)
      shapeError(rnn, `reset_after is ${declared} but the bias has shape [${bias?.shape.join(', ')}]`);
    weights['cell/bias'] = useBias
      ? weight(w, rnn, 'bias', resetAfter ? [2, G] : [G])
      : new Float32Array(resetAfter ? 2 * G : G);
  } else weights['cell/bias'] = useBias ? weight(w, rnn, 'bias', [G]) : new Float32Array(G);
  mapped(rnn, `cell ${cell} (${H} units${cell === 'gru' ? `, reset_after ${resetAfter}` : ''})`);

  const headLayer = head.layer;
  if (head.activation !== 'sigmoid' && head.activation !== 'softmax')
    refuse(
      headLayer,
      'unsupported_setting',
      `activation "${head.activation}": braid's head outputs scores in [0, 1], sigmoid or softmax`,
    );
  const L = positiveInt(headLayer, 'units');
  if (L !== features.labels.length)
    throw new InteropError(
      'shape_mismatch',
      `layer ${headLayer.label} has ${L} outputs, but there are ${features.labels.length} labels (${features.labels.join(', ') || 'none'}): name ${L} with --labels`,
      headLayer.name,
    );
  if (head.activation === 'softmax' && L < 2)
    refuse(headLayer, 'unsupported_setting', 'a softmax over 1 output is always 1');
  weights['head/kernel'] = weight(w, headLayer, 'kernel', [H, L]);
  weights['head/bias'] = flag(headLayer.config, 'use_bias', true)
    ? weight(w, headLayer, 'bias', [L])
    : new Float32Array(L);
  mapped(headLayer, `head ${head.activation} (${L} labels)`);
  if (head.merged) mapped(head.merged, 'activation of the head');
  for (const layer of ignored) mapped(layer, 'nothing (identity at inference)');

  const config = parseModelConfig({
    inputLayout: features.inputLayout,
    encoderUnits: { audio: 0, video: 0, text: 0 },
    fusedEncoder,
    hidden: H,
    cell,
    ...(resetAfter === undefined ? {} : { resetAfter }),
    labels: [...features.labels],
    head: head.activation as HeadType,
    featureConfig: features.featureConfig,
    windowing: windowingJson(features.windowing),
    normalization: norm,
  });
  return { model: createModel(config, weights), layers: mappings };
}
