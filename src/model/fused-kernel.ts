import { FEATURE_MODALITIES, type FeatureModality, type ModelDims, modelDims } from './config.js';
import { COL_BLOCK, KernelMemory, memoryBytes, ROW_BLOCK, roundUp } from './simd-gemm.js';
import { type BackendName, checkStepArgs, type StepKernel } from './step-kernel.js';
import { encoderBiasName, encoderKernelName, type Model } from './weights.js';

interface Buffer {
  readonly view: Float32Array;
  readonly ptr: number;
}

interface EncoderBuffers {
  readonly modality: FeatureModality;
  readonly inputs: number;
  readonly cols: number;
  readonly kernel: Buffer;
  readonly bias: Buffer;
}

/**
 * Copies a row-major [rows][cols] matrix into a [rows][paddedCols] buffer whose padding columns stay zero, so the
 * SIMD kernel's 8-wide column blocks compute zeros there.
 */
function packColumns(dst: Float32Array, src: Float32Array, rows: number, cols: number, padded: number): void {
  for (let r = 0; r < rows; r++) dst.set(src.subarray(r * cols, (r + 1) * cols), r * padded);
}

const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));

/**
 * The `cpu-fused` backend: the whole model step (normalization, encoders, fusion, GRU/LSTM cell, head) over
 * preallocated buffers in one WebAssembly memory, with every matrix product done by the SIMD kernel of
 * simd-gemm.ts. It allocates nothing per step. GRU gates of x and of h are each one fused product over the 3H gate
 * columns (they must stay separate because of reset_after); the LSTM's four gates are one product over [x | h].
 */
export class FusedStepKernel implements StepKernel {
  readonly backend: BackendName = 'cpu-fused';
  readonly device = 'cpu' as const;
  readonly dims: ModelDims;
  readonly maxBatch: number;

  private readonly mem: KernelMemory;
  private readonly isGru: boolean;
  private readonly head: 'sigmoid' | 'softmax';
  private readonly mean: Float64Array;
  private readonly std: Float64Array;
  private readonly gateCols: number;
  private readonly labelCols: number;
  /** Floats per cell-input row: [encoders | mask | h | 8 floats of slack for the last encoder's padding]. */
  private readonly cellStride: number;
  private readonly xn: Buffer;
  private readonly cellIn: Buffer;
  private readonly encoders: EncoderBuffers[] = [];
  private readonly kernel: Buffer;
  private readonly recurrent: Buffer | undefined;
  private readonly inputBias: Buffer;
  private readonly recurrentBias: Buffer | undefined;
  private readonly gx: Buffer;
  private readonly gh: Buffer | undefined;
  private readonly hNew: Buffer;
  private readonly headKernel: Buffer;
  private readonly headBias: Buffer;
  private readonly logits: Buffer;

  constructor(model: Model, maxBatch: number) {
    const { config, weights } = model;
    const d = modelDims(config);
    this.dims = d;
    this.maxBatch = maxBatch;
    this.isGru = config.cell === 'gru';
    this.head = config.head;
    this.mean = Float64Array.from(config.normalization.mean);
    this.std = Float64Array.from(config.normalization.std);
    const rows = roundUp(maxBatch, ROW_BLOCK);
    const H = d.hidden;
    this.gateCols = roundUp(d.gates, COL_BLOCK);
    this.labelCols = roundUp(d.labels, COL_BLOCK);
    this.cellStride = d.cellInput + H + COL_BLOCK;
    const encoderSpecs = FEATURE_MODALITIES.filter((m) => config.inputLayout[m] > 0).map((m) => ({
      modality: m,
      inputs: config.inputLayout[m],
      units: config.encoderUnits[m],
      cols: roundUp(config.encoderUnits[m], COL_BLOCK),
    }));
    const cellK = this.isGru ? d.cellInput : d.cellInput + H;
    const sizes = [
      rows * d.input,
      rows * this.cellStride,
      ...encoderSpecs.flatMap((e) => [e.inputs * e.cols, e.cols]),
      cellK * this.gateCols,
      ...(this.isGru ? [H * this.gateCols, this.gateCols] : []),
      this.gateCols,
      rows * this.gateCols,
      ...(this.isGru ? [rows * this.gateCols] : []),
      rows * H,
      H * this.labelCols,
      this.labelCols,
      rows * this.labelCols,
    ];
    this.mem = new KernelMemory(memoryBytes(sizes));
    const a = (n: number): Buffer => this.mem.alloc(n);
    this.xn = a(rows * d.input);
    this.cellIn = a(rows * this.cellStride);
    for (const e of encoderSpecs) {
      const kernel = a(e.inputs * e.cols);
      const bias = a(e.cols);
      packColumns(
        kernel.view,
        weights[encoderKernelName(e.modality)] as Float32Array,
        e.inputs,
        e.units,
        e.cols,
      );
      bias.view.set(weights[encoderBiasName(e.modality)] as Float32Array);
      this.encoders.push({ modality: e.modality, inputs: e.inputs, cols: e.cols, kernel, bias });
    }
    const cellKernel = weights['cell/kernel'] as Float32Array;
    const cellRecurrent = weights['cell/recurrent_kernel'] as Float32Array;
    const cellBias = weights['cell/bias'] as Float32Array;
    this.kernel = a(cellK * this.gateCols);
    packColumns(this.kernel.view, cellKernel, d.cellInput, d.gates, this.gateCols);
    if (this.isGru) {
      this.recurrent = a(H * this.gateCols);
      packColumns(this.recurrent.view, cellRecurrent, H, d.gates, this.gateCols);
      this.recurrentBias = a(this.gateCols);
      this.recurrentBias.view.set(cellBias.subarray(d.gates, 2 * d.gates));
    } else {
      // LSTM: the recurrent kernel is stacked under the input kernel so [x | h] · [W; U] is one product.
      packColumns(
        this.kernel.view.subarray(d.cellInput * this.gateCols),
        cellRecurrent,
        H,
        d.gates,
        this.gateCols,
      );
    }
    this.inputBias = a(this.gateCols);
    this.inputBias.view.set(cellBias.subarray(0, d.gates));
    this.gx = a(rows * this.gateCols);
    if (this.isGru) this.gh = a(rows * this.gateCols);
    this.hNew = a(rows * H);
    this.headKernel = a(H * this.labelCols);
    packColumns(this.headKernel.view, weights['head/kernel'] as Float32Array, H, d.labels, this.labelCols);
    this.headBias = a(this.labelCols);
    this.headBias.view.set(weights['head/bias'] as Float32Array);
    this.logits = a(rows * this.labelCols);
  }

  step(n: number, x: Float32Array, state: Float32Array, y: Float32Array, nextState: Float32Array): void {
    checkStepArgs(this, n, x, state, y, nextState);
    const rows = roundUp(n, ROW_BLOCK);
    this.normalize(n, x);
    this.encode(rows);
    this.fillMaskAndState(n, state);
    if (this.isGru) this.gru(n, rows, nextState);
    else this.lstm(n, rows, state, nextState);
    this.applyHead(n, rows, y);
  }

  dispose(): void {
    // Nothing to free: the WebAssembly memory goes with the object.
  }

  private normalize(n: number, x: Float32Array): void {
    const F = this.dims.input;
    const xn = this.xn.view;
    const { mean, std } = this;
    for (let r = 0; r < n; r++) {
      const o = r * F;
      for (let k = 0; k < F; k++)
        xn[o + k] = ((x[o + k] as number) - (mean[k] as number)) / (std[k] as number);
    }
  }

  private encode(rows: number): void {
    const F = this.dims.input;
    // In modality order: a block's zero padding columns spill into the next slice, which is written after it.
    for (const e of this.encoders)
      this.mem.gemm(
        this.xn.ptr + this.dims.inputOffset[e.modality] * 4,
        F * 4,
        e.inputs,
        e.kernel.ptr,
        e.cols,
        e.bias.ptr,
        this.cellIn.ptr + this.dims.encoderOffset[e.modality] * 4,
        this.cellStride * 4,
        rows,
        1,
      );
  }

  private fillMaskAndState(n: number, state: Float32Array): void {
    const { input: F, maskOffset, cellInput, hidden: H, state: S } = this.dims;
    const xn = this.xn.view;
    const cell = this.cellIn.view;
    const stride = this.cellStride;
    const maskAt = cellInput - 3;
    for (let r = 0; r < n; r++) {
      const c = r * stride;
      for (let i = 0; i < 3; i++) cell[c + maskAt + i] = xn[r * F + maskOffset + i] as number;
      cell.set(state.subarray(r * S, r * S + H), c + cellInput);
    }
  }

  private gru(n: number, rows: number, nextState: Float32Array): void {
    const { cellInput, hidden: H } = this.dims;
    const G = this.gateCols;
    const stride = this.cellStride * 4;
    const gh = this.gh as Buffer;
    this.mem.gemm(
      this.cellIn.ptr,
      stride,
      cellInput,
      this.kernel.ptr,
      G,
      this.inputBias.ptr,
      this.gx.ptr,
      G * 4,
      rows,
      0,
    );
    this.mem.gemm(
      this.cellIn.ptr + cellInput * 4,
      stride,
      H,
      (this.recurrent as Buffer).ptr,
      G,
      (this.recurrentBias as Buffer).ptr,
      gh.ptr,
      G * 4,
      rows,
      0,
    );
    const gx = this.gx.view;
    const ghv = gh.view;
    const cell = this.cellIn.view;
    const hNew = this.hNew.view;
    for (let r = 0; r < n; r++) {
      const g = r * G;
      const hp = r * this.cellStride + cellInput;
      for (let j = 0; j < H; j++) {
        const z = sigmoid((gx[g + j] as number) + (ghv[g + j] as number));
        const rr = sigmoid((gx[g + H + j] as number) + (ghv[g + H + j] as number));
        const c = Math.tanh((gx[g + 2 * H + j] as number) + rr * (ghv[g + 2 * H + j] as number));
        const h = z * (cell[hp + j] as number) + (1 - z) * c;
        hNew[r * H + j] = h;
        nextState[r * H + j] = h;
      }
    }
  }

  private lstm(n: number, rows: number, state: Float32Array, nextState: Float32Array): void {
    const { cellInput, hidden: H, state: S } = this.dims;
    const G = this.gateCols;
    this.mem.gemm(
      this.cellIn.ptr,
      this.cellStride * 4,
      cellInput + H,
      this.kernel.ptr,
      G,
      this.inputBias.ptr,
      this.gx.ptr,
      G * 4,
      rows,
      0,
    );
    const g = this.gx.view;
    const hNew = this.hNew.view;
    for (let r = 0; r < n; r++) {
      const o = r * G;
      for (let j = 0; j < H; j++) {
        const i = sigmoid(g[o + j] as number);
        const f = sigmoid(g[o + H + j] as number);
        const cc = Math.tanh(g[o + 2 * H + j] as number);
        const out = sigmoid(g[o + 3 * H + j] as number);
        const c = f * (state[r * S + H + j] as number) + i * cc;
        const h = out * Math.tanh(c);
        hNew[r * H + j] = h;
        nextState[r * S + j] = h;
        nextState[r * S + H + j] = c;
      }
    }
  }

  private applyHead(n: number, rows: number, y: Float32Array): void {
    const { hidden: H, labels: L } = this.dims;
    const LC = this.labelCols;
    this.mem.gemm(
      this.hNew.ptr,
      H * 4,
      H,
      this.headKernel.ptr,
      LC,
      this.headBias.ptr,
      this.logits.ptr,
      LC * 4,
      rows,
      0,
    );
    const logits = this.logits.view;
    for (let r = 0; r < n; r++) {
      const o = r * LC;
      if (this.head === 'sigmoid') {
        for (let j = 0; j < L; j++) y[r * L + j] = sigmoid(logits[o + j] as number);
        continue;
      }
      let max = Number.NEGATIVE_INFINITY;
      for (let j = 0; j < L; j++) max = Math.max(max, logits[o + j] as number);
      let sum = 0;
      for (let j = 0; j < L; j++) sum += Math.exp((logits[o + j] as number) - max);
      for (let j = 0; j < L; j++) y[r * L + j] = Math.exp((logits[o + j] as number) - max) / sum;
    }
  }
}
