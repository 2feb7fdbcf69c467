import {
  type DenseActivation,
  FEATURE_MODALITIES,
  type FeatureModality,
  gruResetsAfter,
  type ModelDims,
  modelDims,
} from './config.js';
import {
  createModel,
  denseBiasName,
  denseKernelName,
  encoderBiasName,
  encoderKernelName,
  type Model,
} from './weights.js';

/** SIMD width of the CPU kernel; gate blocks start at multiples of it. */
export const LANES = 4;
/** Column block of the CPU gemm; padded matrices have a multiple of it columns. */
export const COL_BLOCK = 8;
/** Offsets are aligned to 16 floats (64 bytes, a cache line). */
const ALIGN = 16;

export const roundUp = (n: number, block: number): number => Math.ceil(n / block) * block;

export interface PackedEncoder {
  readonly modality: FeatureModality;
  /** Where the modality's slice starts in the fused input, and its width. */
  readonly inputOffset: number;
  readonly inputs: number;
  readonly units: number;
  /** units rounded up to {@link COL_BLOCK}: the row length of the packed kernel. */
  readonly cols: number;
  /** Where its output starts in the cell input. */
  readonly outputOffset: number;
  readonly kernel: number;
  readonly bias: number;
}

/** One layer of a fused encoder (config.fusedEncoder): dense over the previous layer's output, x' for the first. */
export interface PackedDense {
  readonly inputs: number;
  readonly units: number;
  /** units rounded up to {@link COL_BLOCK}: the row length of the packed kernel and of the layer's output rows. */
  readonly cols: number;
  readonly activation: DenseActivation;
  readonly kernel: number;
  readonly bias: number;
}

/**
 * All weights of a model in one Float32Array, laid out for the fused kernels (the WebAssembly CPU kernel and the
 * WGSL GPU kernel share it): row-major matrices with zero-padded columns, and the cell's gate blocks each H4 = H
 * rounded up to 4 columns wide, so gate g of hidden unit j sits at column g·H4 + j. Offsets are in floats.
 */
export interface PackedWeights {
  readonly dims: ModelDims;
  readonly isGru: boolean;
  /** GRU only: reset gate after the recurrent product (Keras reset_after, the default) or before it. */
  readonly resetAfter: boolean;
  /** Whether the model has a fused encoder (config.fusedEncoder) in place of per-modality encoders. */
  readonly fusedEncoder: boolean;
  readonly softmax: boolean;
  readonly h4: number;
  /** Gate columns per packed cell row: gates × H4 rounded up to {@link COL_BLOCK}. */
  readonly gateCols: number;
  readonly labelCols: number;
  /** H4 rounded up to {@link COL_BLOCK}: the row length of the packed U_h of a GRU without reset_after. */
  readonly candidateCols: number;
  /** Rows of the packed cell kernel: the cell input (GRU), or the cell input then h (LSTM: [W; U] stacked). */
  readonly cellRows: number;
  readonly data: Float32Array;
  readonly offsets: {
    readonly mean: number;
    readonly std: number;
    readonly encoders: readonly PackedEncoder[];
    /** The fused encoder's layers, in order (empty with per-modality encoders). */
    readonly dense: readonly PackedDense[];
    readonly kernel: number;
    /** GRU only: the recurrent kernel and bias, kept apart because of reset_after (the bias is zero without it). */
    readonly recurrent: number;
    readonly recurrentBias: number;
    /**
     * GRU without reset_after only: the candidate's recurrent kernel U_h again, alone, [H][{@link candidateCols}],
     * for the product (r ⊙ h) U_h that has to wait for r; −1 otherwise.
     */
    readonly recurrentCandidate: number;
    readonly inputBias: number;
    readonly headKernel: number;
    readonly headBias: number;
  };
}

/** Copies [rows][cols] into [rows][padded] starting at `at`; padding columns stay zero. */
function packColumns(
  dst: Float32Array,
  at: number,
  src: Float32Array,
  rows: number,
  cols: number,
  padded: number,
): void {
  for (let r = 0; r < rows; r++) dst.set(src.subarray(r * cols, (r + 1) * cols), at + r * padded);
}

/** Copies [rows][gates × H] into [rows][padded] with gate g's H columns starting at g × H4. */
function packGates(
  dst: Float32Array,
  at: number,
  src: Float32Array,
  rows: number,
  gates: number,
  H: number,
  H4: number,
  padded: number,
): void {
  for (let r = 0; r < rows; r++)
    for (let g = 0; g < gates; g++)
      dst.set(src.subarray((r * gates + g) * H, (r * gates + g + 1) * H), at + r * padded + g * H4);
}

export function packWeights(model: Model): PackedWeights {
  // Checked again here: a Model assembled by hand skips createModel, and a short array would pack as silent zeros.
  const { config, weights } = createModel(model.config, model.weights);
  const dims = modelDims(config);
  const isGru = config.cell === 'gru';
  const resetAfter = isGru && gruResetsAfter(config);
  const gates = isGru ? 3 : 4;
  const H = dims.hidden;
  const h4 = roundUp(H, LANES);
  const gateCols = roundUp(gates * h4, COL_BLOCK);
  const labelCols = roundUp(dims.labels, COL_BLOCK);
  const candidateCols = roundUp(h4, COL_BLOCK);
  const cellRows = isGru ? dims.cellInput : dims.cellInput + H;
  let size = 0;
  const reserve = (floats: number): number => {
    const at = size;
    size = roundUp(size + floats, ALIGN);
    return at;
  };
  const mean = reserve(dims.input);
  const std = reserve(dims.input);
  let denseInputs = dims.input;
  const dense: PackedDense[] = (config.fusedEncoder ?? []).map((layer) => {
    const inputs = denseInputs;
    denseInputs = layer.units;
    const cols = roundUp(layer.units, COL_BLOCK);
    return {
      inputs,
      units: layer.units,
      cols,
      activation: layer.activation,
      kernel: reserve(inputs * cols),
      bias: reserve(cols),
    };
  });
  const encoders: PackedEncoder[] = FEATURE_MODALITIES.filter((m) => config.encoderUnits[m] > 0).map((m) => {
    const inputs = config.inputLayout[m];
    const cols = roundUp(config.encoderUnits[m], COL_BLOCK);
    return {
      modality: m,
      inputOffset: dims.inputOffset[m],
      inputs,
      units: config.encoderUnits[m],
      cols,
      outputOffset: dims.encoderOffset[m],
      kernel: reserve(inputs * cols),
      bias: reserve(cols),
    };
  });
  const kernel = reserve(cellRows * gateCols);
  const recurrent = isGru ? reserve(H * gateCols) : -1;
  const recurrentBias = isGru ? reserve(gateCols) : -1;
  const recurrentCandidate = isGru && !resetAfter ? reserve(H * candidateCols) : -1;
  const inputBias = reserve(gateCols);
  const headKernel = reserve(H * labelCols);
  const headBias = reserve(labelCols);

  const data = new Float32Array(size);
  data.set(config.normalization.mean, mean);
  data.set(config.normalization.std, std);
  dense.forEach((layer, i) => {
    const kernelValues = weights[denseKernelName(i)] as Float32Array;
    packColumns(data, layer.kernel, kernelValues, layer.inputs, layer.units, layer.cols);
    data.set(weights[denseBiasName(i)] as Float32Array, layer.bias);
  });
  for (const e of encoders) {
    packColumns(
      data,
      e.kernel,
      weights[encoderKernelName(e.modality)] as Float32Array,
      e.inputs,
      e.units,
      e.cols,
    );
    data.set(weights[encoderBiasName(e.modality)] as Float32Array, e.bias);
  }
  const cellBias = weights['cell/bias'] as Float32Array;
  const pack = (at: number, src: Float32Array, rows: number): void =>
    packGates(data, at, src, rows, gates, H, h4, gateCols);
  pack(kernel, weights['cell/kernel'] as Float32Array, dims.cellInput);
  if (isGru) {
    const U = weights['cell/recurrent_kernel'] as Float32Array;
    pack(recurrent, U, H);
    // Without reset_after Keras has no recurrent bias: the packed one stays zero.
    if (resetAfter) pack(recurrentBias, cellBias.subarray(dims.gates, 2 * dims.gates), 1);
    else
      for (let k = 0; k < H; k++)
        data.set(
          U.subarray(k * dims.gates + 2 * H, (k + 1) * dims.gates),
          recurrentCandidate + k * candidateCols,
        );
  } else {
    pack(kernel + dims.cellInput * gateCols, weights['cell/recurrent_kernel'] as Float32Array, H);
  }
  pack(inputBias, cellBias.subarray(0, dims.gates), 1);
  packColumns(data, headKernel, weights['head/kernel'] as Float32Array, H, dims.labels, labelCols);
  data.set(weights['head/bias'] as Float32Array, headBias);
  return {
    dims,
    isGru,
    resetAfter,
    fusedEncoder: config.fusedEncoder !== undefined,
    softmax: config.head === 'softmax',
    h4,
    gateCols,
    labelCols,
    candidateCols,
    cellRows,
    data,
    offsets: {
      mean,
      std,
      encoders,
      dense,
      kernel,
      recurrent,
      recurrentBias,
      recurrentCandidate,
      inputBias,
      headKernel,
      headBias,
    },
  };
}
