import { type CellGroup, cellGroups, groupInputRows, wholeCell } from './cell-groups.js';
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
 * One group of the cell (cell-groups.ts) packed as a cell of its own: its encoders' columns, its gate blocks each
 * H4 = its units rounded up to 4 columns wide (gate g of its unit j at column g·H4 + j), over its own cell input
 * rows [its encoder outputs | mask] (then its h for an LSTM). Offsets are in floats.
 */
export interface PackedCellGroup {
  /** The group's units are [hiddenStart, hiddenStart + hidden) of the model's state. */
  readonly hiddenStart: number;
  readonly hidden: number;
  readonly h4: number;
  /** Gate columns per packed cell row: gates × H4 rounded up to {@link COL_BLOCK}. */
  readonly gateCols: number;
  /** H4 rounded up to {@link COL_BLOCK}: the row length of the packed U_h of a GRU without reset_after. */
  readonly candidateCols: number;
  /** Width of the group's cell input: its encoder outputs and the 3 mask entries (all of dims.cellInput for one group). */
  readonly cellInput: number;
  /** Rows of the packed cell kernel: the cell input (GRU), or the cell input then h (LSTM: [W; U] stacked). */
  readonly cellRows: number;
  /** The per-modality encoders' columns this group reads; outputOffset is within the group's cell input. */
  readonly encoders: readonly PackedEncoder[];
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
}

/**
 * All weights of a model in one Float32Array, laid out for the fused kernels (the WebAssembly CPU kernel and the
 * WGSL GPU kernel share it): row-major matrices with zero-padded columns, the cell as one or more groups
 * ({@link PackedCellGroup}), the head over the whole h, H4 = H rounded up to 4 floats a row. Offsets are in floats.
 */
export interface PackedWeights {
  readonly dims: ModelDims;
  readonly isGru: boolean;
  /** GRU only: reset gate after the recurrent product (Keras reset_after, the default) or before it. */
  readonly resetAfter: boolean;
  /** Whether the model has a fused encoder (config.fusedEncoder) in place of per-modality encoders. */
  readonly fusedEncoder: boolean;
  readonly softmax: boolean;
  /** H rounded up to 4: the row length of the whole new h the head reads. */
  readonly h4: number;
  readonly labelCols: number;
  readonly data: Float32Array;
  /** The cell: one group, or an ensemble's members apart when packed with `splitCell`. */
  readonly groups: readonly PackedCellGroup[];
  readonly offsets: {
    readonly mean: number;
    readonly std: number;
    /** The fused encoder's layers, in order (empty with per-modality encoders). */
    readonly dense: readonly PackedDense[];
    readonly headKernel: number;
    readonly headBias: number;
  };
}

export interface PackOptions {
  /**
   * Pack each group of the cell (cellGroups) apart, so that a kernel multiplies none of the zero blocks between an
   * ensemble's members. Off: the cell as one group, the layout the GPU kernel reads.
   */
  readonly splitCell?: boolean;
  /**
   * With splitCell: neighbouring groups are packed together until each has at least this many units (default 16),
   * since a tiny cell costs its padding and its calls more than the zeros it skips. Merging neighbours is as exact as
   * splitting.
   */
  readonly minGroupUnits?: number;
}

/** Neighbouring groups merged until each holds at least `min` units (the last may stay smaller alone). */
function mergeSmallGroups(groups: readonly CellGroup[], min: number): CellGroup[] {
  const merged: CellGroup[] = [];
  for (const g of groups) {
    const last = merged[merged.length - 1];
    if (last === undefined || last.hidden >= min) {
      merged.push(g);
      continue;
    }
    const units = (m: FeatureModality): number[] =>
      [...last.encoderUnits[m], ...g.encoderUnits[m]].sort((a, b) => a - b);
    merged[merged.length - 1] = {
      hiddenStart: last.hiddenStart,
      hidden: last.hidden + g.hidden,
      encoderUnits: { audio: units('audio'), video: units('video'), text: units('text') },
    };
  }
  return merged;
}

/** The one group of a cell packed whole; throws for a split pack (a kernel that computes the cell in one piece). */
export function wholeCellGroup(p: PackedWeights): PackedCellGroup {
  const [group, ...rest] = p.groups;
  if (group === undefined || rest.length > 0)
    throw new Error(`expected a cell packed whole, got ${p.groups.length} groups`);
  return group;
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

/**
 * Copies the given rows of [rows][gates × H] into [rows.length][padded], of each gate only the `count` columns of
 * units from `first`, gate g's starting at g × H4.
 */
function packGates(
  dst: Float32Array,
  at: number,
  src: Float32Array,
  rows: readonly number[],
  gates: number,
  H: number,
  units: { readonly first: number; readonly count: number; readonly h4: number },
  padded: number,
): void {
  rows.forEach((r, i) => {
    for (let g = 0; g < gates; g++) {
      const from = (r * gates + g) * H + units.first;
      dst.set(src.subarray(from, from + units.count), at + i * padded + g * units.h4);
    }
  });
}

const range = (from: number, count: number): number[] => Array.from({ length: count }, (_, i) => from + i);

export function packWeights(model: Model, options: PackOptions = {}): PackedWeights {
  // Checked again here: a Model assembled by hand skips createModel, and a short array would pack as silent zeros.
  const checked = createModel(model.config, model.weights);
  const { config, weights } = checked;
  const dims = modelDims(config);
  const isGru = config.cell === 'gru';
  const resetAfter = isGru && gruResetsAfter(config);
  const gates = isGru ? 3 : 4;
  const H = dims.hidden;
  const labelCols = roundUp(dims.labels, COL_BLOCK);
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
  const cellGroupsToPack = options.splitCell
    ? mergeSmallGroups(cellGroups(checked), options.minGroupUnits ?? 16)
    : [wholeCell(checked)];
  const split = cellGroupsToPack.length > 1;
  /** Where each group's cell-input rows come from in the model's cell input, in order. */
  const inputRows = cellGroupsToPack.map((g) => (split ? groupInputRows(g, dims) : range(0, dims.cellInput)));
  const groups: PackedCellGroup[] = cellGroupsToPack.map((g, k) => {
    const h4 = roundUp(g.hidden, LANES);
    const gateCols = roundUp(gates * h4, COL_BLOCK);
    const candidateCols = roundUp(h4, COL_BLOCK);
    const cellInput = (inputRows[k] as number[]).length;
    const cellRows = isGru ? cellInput : cellInput + g.hidden;
    let outputOffset = 0;
    const encoders: PackedEncoder[] = FEATURE_MODALITIES.filter((m) => g.encoderUnits[m].length > 0).map(
      (m) => {
        const units = g.encoderUnits[m].length;
        const cols = roundUp(units, COL_BLOCK);
        const e = {
          modality: m,
          inputOffset: dims.inputOffset[m],
          inputs: config.inputLayout[m],
          units,
          cols,
          outputOffset,
          kernel: reserve(config.inputLayout[m] * cols),
          bias: reserve(cols),
        };
        outputOffset += units;
        return e;
      },
    );
    return {
      hiddenStart: g.hiddenStart,
      hidden: g.hidden,
      h4,
      gateCols,
      candidateCols,
      cellInput,
      cellRows,
      encoders,
      kernel: reserve(cellRows * gateCols),
      recurrent: isGru ? reserve(g.hidden * gateCols) : -1,
      recurrentBias: isGru ? reserve(gateCols) : -1,
      recurrentCandidate: isGru && !resetAfter ? reserve(g.hidden * candidateCols) : -1,
      inputBias: reserve(gateCols),
    };
  });
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
  const cellBias = weights['cell/bias'] as Float32Array;
  const U = weights['cell/recurrent_kernel'] as Float32Array;
  groups.forEach((g, k) => {
    const units = cellGroupsToPack[k] as CellGroup;
    for (const e of g.encoders) {
      const src = weights[encoderKernelName(e.modality)] as Float32Array;
      const bias = weights[encoderBiasName(e.modality)] as Float32Array;
      const all = config.encoderUnits[e.modality];
      units.encoderUnits[e.modality].forEach((u, c) => {
        for (let i = 0; i < e.inputs; i++) data[e.kernel + i * e.cols + c] = src[i * all + u] as number;
        data[e.bias + c] = bias[u] as number;
      });
    }
    const columns = { first: g.hiddenStart, count: g.hidden, h4: g.h4 };
    const pack = (at: number, src: Float32Array, rows: readonly number[]): void =>
      packGates(data, at, src, rows, gates, H, columns, g.gateCols);
    const ownHidden = range(g.hiddenStart, g.hidden);
    pack(g.kernel, weights['cell/kernel'] as Float32Array, inputRows[k] as number[]);
    if (isGru) {
      pack(g.recurrent, U, ownHidden);
      // Without reset_after Keras has no recurrent bias: the packed one stays zero.
      if (resetAfter) pack(g.recurrentBias, cellBias.subarray(dims.gates, 2 * dims.gates), [0]);
      else
        ownHidden.forEach((r, i) => {
          const from = r * dims.gates + 2 * H + g.hiddenStart;
          data.set(U.subarray(from, from + g.hidden), g.recurrentCandidate + i * g.candidateCols);
        });
    } else {
      pack(g.kernel + g.cellInput * g.gateCols, U, ownHidden);
    }
    pack(g.inputBias, cellBias.subarray(0, dims.gates), [0]);
  });
  packColumns(data, headKernel, weights['head/kernel'] as Float32Array, H, dims.labels, labelCols);
  data.set(weights['head/bias'] as Float32Array, headBias);
  return {
    dims,
    isGru,
    resetAfter,
    fusedEncoder: config.fusedEncoder !== undefined,
    softmax: config.head === 'softmax',
    h4: roundUp(H, LANES),
    labelCols,
    data,
    groups,
    offsets: { mean, std, dense, headKernel, headBias },
  };
}
