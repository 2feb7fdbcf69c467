import { FEATURE_MODALITIES, type FeatureModality, type ModelDims, modelDims } from './config.js';
import { createModel, encoderBiasName, encoderKernelName, type Model } from './weights.js';

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

/**
 * All weights of a model in one Float32Array, laid out for the fused kernels (the WebAssembly CPU kernel and the
 * WGSL GPU kernel share it): row-major matrices with zero-padded columns, and the cell's gate blocks each H4 = H
 * rounded up to 4 columns wide, so gate g of hidden unit j sits at column g·H4 + j. Offsets are in floats.
 */
export interface PackedWeights {
  readonly dims: ModelDims;
  readonly isGru: boolean;
  readonly softmax: boolean;
  readonly h4: number;
  /** Gate columns per packed cell row: gates × H4 rounded up to {@link COL_BLOCK}. */
  readonly gateCols: number;
  readonly labelCols: number;
  /** Rows of the packed cell kernel: the cell input (GRU), or the cell input then h (LSTM: [W; U] stacked). */
  readonly cellRows: number;
  readonly data: Float32Array;
  readonly offsets: {
    readonly mean: number;
    readonly std: number;
    readonly encoders: readonly PackedEncoder[];
    readonly kernel: number;
    /** GRU only: the recurrent kernel and bias, kept apart because of reset_after. */
    readonly recurrent: number;
    readonly recurrentBias: number;
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
  const gates = isGru ? 3 : 4;
  const H = dims.hidden;
  const h4 = roundUp(H, LANES);
  const gateCols = roundUp(gates * h4, COL_BLOCK);
  const labelCols = roundUp(dims.labels, COL_BLOCK);
  const cellRows = isGru ? dims.cellInput : dims.cellInput + H;
  let size = 0;
  const reserve = (floats: number): number => {
    const at = size;
    size = roundUp(size + floats, ALIGN);
    return at;
  };
  const mean = reserve(dims.input);
  const std = reserve(dims.input);
  const encoders: PackedEncoder[] = FEATURE_MODALITIES.filter((m) => config.inputLayout[m] > 0).map((m) => {
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
  const inputBias = reserve(gateCols);
  const headKernel = reserve(H * labelCols);
  const headBias = reserve(labelCols);

  const data = new Float32Array(size);
  data.set(config.normalization.mean, mean);
  data.set(config.normalization.std, std);
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
    pack(recurrent, weights['cell/recurrent_kernel'] as Float32Array, H);
    pack(recurrentBias, cellBias.subarray(dims.gates, 2 * dims.gates), 1);
  } else {
    pack(kernel + dims.cellInput * gateCols, weights['cell/recurrent_kernel'] as Float32Array, H);
  }
  pack(inputBias, cellBias.subarray(0, dims.gates), 1);
  packColumns(data, headKernel, weights['head/kernel'] as Float32Array, H, dims.labels, labelCols);
  data.set(weights['head/bias'] as Float32Array, headBias);
  return {
    dims,
    isGru,
    softmax: config.head === 'softmax',
    h4,
    gateCols,
    labelCols,
    cellRows,
    data,
    offsets: { mean, std, encoders, kernel, recurrent, recurrentBias, inputBias, headKernel, headBias },
  };
}
