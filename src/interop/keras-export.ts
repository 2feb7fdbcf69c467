import { FEATURE_MODALITIES, gruResetsAfter, modelDims } from '../model/config.js';
import {
  denseBiasName,
  denseKernelName,
  encoderBiasName,
  encoderKernelName,
  type Model,
} from '../model/weights.js';
import type { LayersModelToWrite, LayersWeight } from './layers-files.js';

/** Where `braid export-model` keeps what Keras has no place for, in model.json's userDefinedMetadata. */
export const BRAID_METADATA_KEY = 'braid';

/** Features, labels, windowing and the exact (float64) normalization of an exported braid model. */
export interface BraidExportMetadata {
  readonly format: 'braid-keras-export';
  readonly version: 1;
  readonly inputLayout: unknown;
  readonly featureConfig: unknown;
  readonly windowing?: unknown;
  readonly labels: readonly string[];
  readonly normalization: { readonly mean: readonly number[]; readonly std: readonly number[] };
}

const zeros = { class_name: 'Zeros', config: {} };
const glorot = { class_name: 'GlorotUniform', config: { seed: null } };

function denseLayer(name: string, units: number, activation: string): Record<string, unknown> {
  return {
    class_name: 'Dense',
    config: {
      name,
      trainable: true,
      dtype: 'float32',
      units,
      activation,
      use_bias: true,
      kernel_initializer: glorot,
      bias_initializer: zeros,
      kernel_regularizer: null,
      bias_regularizer: null,
      activity_regularizer: null,
      kernel_constraint: null,
      bias_constraint: null,
    },
  };
}

function recurrentLayer(model: Model): Record<string, unknown> {
  const { config } = model;
  const gru = config.cell === 'gru';
  return {
    class_name: gru ? 'GRU' : 'LSTM',
    config: {
      name: config.cell,
      trainable: true,
      dtype: 'float32',
      units: config.hidden,
      activation: 'tanh',
      recurrent_activation: 'sigmoid',
      use_bias: true,
      kernel_initializer: glorot,
      recurrent_initializer: { class_name: 'Orthogonal', config: { gain: 1, seed: null } },
      bias_initializer: zeros,
      ...(gru ? { reset_after: gruResetsAfter(config) } : { unit_forget_bias: true }),
      kernel_regularizer: null,
      recurrent_regularizer: null,
      bias_regularizer: null,
      activity_regularizer: null,
      kernel_constraint: null,
      recurrent_constraint: null,
      bias_constraint: null,
      dropout: 0,
      recurrent_dropout: 0,
      implementation: 2,
      return_sequences: true,
      return_state: false,
      go_backwards: false,
      stateful: false,
      unroll: false,
    },
  };
}

/**
 * braid's per-modality ReLU encoders and the mask pass-through as one ReLU Dense layer over the whole input: a
 * block-diagonal kernel, then two units per mask entry, relu(m) and relu(−m), since relu(m) − relu(−m) = m. The cell
 * kernel gets each mask row twice, the second negated. Every product is the original one or an exact zero, so the
 * layer computes the same floats in the same order as the per-modality encoders.
 */
function modalityEncoderAsDense(model: Model): {
  units: number;
  kernel: Float32Array;
  bias: Float32Array;
  cell: Float32Array;
} {
  const { config, weights } = model;
  const d = modelDims(config);
  const F = d.input;
  const encoded = d.cellInput - 3;
  const units = encoded + 6;
  const kernel = new Float32Array(F * units);
  const bias = new Float32Array(units);
  for (const m of FEATURE_MODALITIES) {
    const U = config.encoderUnits[m];
    if (U === 0) continue;
    const k = weights[encoderKernelName(m)] as Float32Array;
    const b = weights[encoderBiasName(m)] as Float32Array;
    for (let i = 0; i < config.inputLayout[m]; i++)
      for (let u = 0; u < U; u++)
        kernel[(d.inputOffset[m] + i) * units + d.encoderOffset[m] + u] = k[i * U + u] as number;
    bias.set(b, d.encoderOffset[m]);
  }
  for (let i = 0; i < 3; i++) {
    kernel[(d.maskOffset + i) * units + encoded + 2 * i] = 1;
    kernel[(d.maskOffset + i) * units + encoded + 2 * i + 1] = -1;
  }
  const G = d.gates;
  const original = weights['cell/kernel'] as Float32Array;
  const cell = new Float32Array(units * G);
  cell.set(original.subarray(0, encoded * G));
  for (let i = 0; i < 3; i++) {
    const row = original.subarray((encoded + i) * G, (encoded + i + 1) * G);
    cell.set(row, (encoded + 2 * i) * G);
    cell.set(
      row.map((v) => -v),
      (encoded + 2 * i + 1) * G,
    );
  }
  return { units, kernel, bias, cell };
}

/**
 * `braid export-model`: a braid model as a Keras `Sequential` model in the TensorFlow.js layers format, as
 * tfjs-layers writes one, so tf.loadLayersModel loads it (an LSTM or a GRU without reset_after; tfjs-layers has no
 * reset_after GRU) and tensorflowjs_converter turns it into a Keras file. Layers: BatchNormalization (frozen, ε = 0,
 * no centre or scale: exactly (x − mean) / std), then the encoder as Dense layers, the GRU or LSTM returning
 * sequences, and the Dense head. The normalization's float64 values, the feature config, the layout, the labels and
 * the windowing travel in userDefinedMetadata.braid, so `braid import` of the file needs no windows.npz and gives
 * back the same predictions.
 */
export function exportKerasModel(model: Model): LayersModelToWrite {
  const { config, weights } = model;
  const d = modelDims(config);
  const F = d.input;
  const layers: Record<string, unknown>[] = [];
  const out: LayersWeight[] = [];
  const add = (name: string, shape: number[], values: Float32Array): void => {
    out.push({ name, shape, values });
  };
  layers.push({
    class_name: 'BatchNormalization',
    config: {
      name: 'normalization',
      trainable: false,
      dtype: 'float32',
      batch_input_shape: [null, null, F],
      axis: -1,
      momentum: 0.99,
      epsilon: 0,
      center: false,
      scale: false,
      beta_initializer: zeros,
      gamma_initializer: { class_name: 'Ones', config: {} },
      moving_mean_initializer: zeros,
      moving_variance_initializer: { class_name: 'Ones', config: {} },
      beta_regularizer: null,
      gamma_regularizer: null,
      beta_constraint: null,
      gamma_constraint: null,
    },
  });
  const { mean, std } = config.normalization;
  add('normalization/moving_mean', [F], Float32Array.from(mean));
  add(
    'normalization/moving_variance',
    [F],
    Float32Array.from(std, (s) => s * s),
  );

  let cellKernel = weights['cell/kernel'] as Float32Array;
  let cellInput = d.cellInput;
  if (config.fusedEncoder === undefined) {
    const enc = modalityEncoderAsDense(model);
    layers.push(denseLayer('encoder', enc.units, 'relu'));
    add('encoder/kernel', [F, enc.units], enc.kernel);
    add('encoder/bias', [enc.units], enc.bias);
    cellKernel = enc.cell;
    cellInput = enc.units;
  } else {
    let inputs = F;
    config.fusedEncoder.forEach((layer, i) => {
      const name = `encoder_${i}`;
      layers.push(denseLayer(name, layer.units, layer.activation));
      add(`${name}/kernel`, [inputs, layer.units], weights[denseKernelName(i)] as Float32Array);
      add(`${name}/bias`, [layer.units], weights[denseBiasName(i)] as Float32Array);
      inputs = layer.units;
    });
  }
  layers.push(recurrentLayer(model));
  const cell = config.cell;
  add(`${cell}/kernel`, [cellInput, d.gates], cellKernel);
  add(`${cell}/recurrent_kernel`, [d.hidden, d.gates], weights['cell/recurrent_kernel'] as Float32Array);
  const bias = weights['cell/bias'] as Float32Array;
  add(`${cell}/bias`, bias.length === 2 * d.gates ? [2, d.gates] : [d.gates], bias);
  layers.push(denseLayer('head', d.labels, config.head));
  add('head/kernel', [d.hidden, d.labels], weights['head/kernel'] as Float32Array);
  add('head/bias', [d.labels], weights['head/bias'] as Float32Array);

  const metadata: BraidExportMetadata = {
    format: 'braid-keras-export',
    version: 1,
    inputLayout: config.inputLayout,
    featureConfig: config.featureConfig,
    ...(config.windowing === undefined ? {} : { windowing: config.windowing }),
    labels: config.labels,
    normalization: { mean: [...mean], std: [...std] },
  };
  return {
    topology: {
      class_name: 'Sequential',
      config: { name: 'braid', layers },
      keras_version: 'braid',
      backend: 'tensor_flow.js',
    },
    weights: out,
    userDefinedMetadata: { [BRAID_METADATA_KEY]: metadata },
  };
}
