import { FEATURE_MODALITIES, type FeatureModality, type ModelDims, modelDims } from './config.js';
import { COL_BLOCK, KernelMemory, LANES, memoryBytes, ROW_BLOCK, roundUp } from './simd-kernels.js';
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

/**
 * Copies gate-blocked columns [rows][gates × H] into [rows][paddedCols] with each gate's block starting at a
 * multiple of the SIMD width (gate g at g × H4), so the gate functions load whole vectors of one gate.
 */
function packGates(
  dst: Float32Array,
  src: Float32Array,
  rows: number,
  gates: number,
  H: number,
  H4: number,
  padded: number,
): void {
  for (let r = 0; r < rows; r++)
    for (let g = 0; g < gates; g++)
      dst.set(src.subarray(r * gates * H + g * H, r * gates * H + (g + 1) * H), r * padded + g * H4);
}

const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));

/**
 * The `cpu-fused` backend: the whole model step (normalization, encoders, fusion, GRU/LSTM cell, head) over
 * preallocated buffers in one WebAssembly memory; matrix products and gate nonlinearities run as the SIMD
 * functions of simd-kernels.ts. It allocates nothing per step. The GRU's gates of x and of h are each one fused
 * product over all 3 gate blocks (kept apart because of reset_after); the LSTM's four gates are one product over
 * [x | h]. Gate blocks are padded to H4 = H rounded up to 4 columns so every SIMD vector holds one gate.
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
  /** Hidden size rounded up to the SIMD width: the width of one gate block and of an h or c row. */
  private readonly h4: number;
  private readonly gateCols: number;
  private readonly labelCols: number;
  /** Floats per cell-input row: [encoders | mask | h | 8 floats of slack for padding spill and H4 reads]. */
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
  private readonly cPrev: Buffer | undefined;
  private readonly cNew: Buffer | undefined;
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
    const gates = this.isGru ? 3 : 4;
    this.h4 = roundUp(H, LANES);
    this.gateCols = roundUp(gates * this.h4, COL_BLOCK);
    this.labelCols = roundUp(d.labels, COL_BLOCK);
    this.cellStride = d.cellInput + H + COL_BLOCK;
    const encoderSpecs = FEATURE_MODALITIES.filter((m) => config.inputLayout[m] > 0).map((m) => ({
      modality: m,
      inputs: config.inputLayout[m],
      units: config.encoderUnits[m],
      cols: roundUp(config.encoderUnits[m], COL_BLOCK),
    }));
    const cellK = this.isGru ? d.cellInput : d.cellInput + H;
    const G = this.gateCols;
    const sizes = [
      rows * d.input,
      rows * this.cellStride,
      ...encoderSpecs.flatMap((e) => [e.inputs * e.cols, e.cols]),
      cellK * G,
      ...(this.isGru ? [H * G, G, rows * G] : [rows * this.h4, rows * this.h4]),
      G,
      rows * G,
      rows * this.h4,
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
    const pack = (dst: Float32Array, src: Float32Array, r: number): void =>
      packGates(dst, src, r, gates, H, this.h4, G);
    this.kernel = a(cellK * G);
    pack(this.kernel.view, cellKernel, d.cellInput);
    if (this.isGru) {
      this.recurrent = a(H * G);
      pack(this.recurrent.view, cellRecurrent, H);
      this.recurrentBias = a(G);
      pack(this.recurrentBias.view, cellBias.subarray(d.gates, 2 * d.gates), 1);
      this.gh = a(rows * G);
    } else {
      // The recurrent kernel is stacked under the input kernel so [x | h] · [W; U] is one product.
      pack(this.kernel.view.subarray(d.cellInput * G), cellRecurrent, H);
      this.cPrev = a(rows * this.h4);
      this.cNew = a(rows * this.h4);
    }
    this.inputBias = a(G);
    pack(this.inputBias.view, cellBias.subarray(0, d.gates), 1);
    this.gx = a(rows * G);
    this.hNew = a(rows * this.h4);
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
    if (this.isGru) this.gru(n, rows);
    else this.lstm(n, rows);
    this.writeState(n, nextState);
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
      this.cPrev?.view.set(state.subarray(r * S + H, (r + 1) * S), r * this.h4);
    }
  }

  private gru(n: number, rows: number): void {
    const { cellInput, hidden: H } = this.dims;
    const G = this.gateCols;
    const stride = this.cellStride * 4;
    const gh = this.gh as Buffer;
    const { gemm } = this.mem;
    gemm(
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
    const recurrent = (this.recurrent as Buffer).ptr;
    const recurrentBias = (this.recurrentBias as Buffer).ptr;
    gemm(this.cellIn.ptr + cellInput * 4, stride, H, recurrent, G, recurrentBias, gh.ptr, G * 4, rows, 0);
    this.mem.gruGates(
      this.gx.ptr,
      gh.ptr,
      this.cellIn.ptr + cellInput * 4,
      stride,
      this.hNew.ptr,
      n,
      this.h4,
      G,
    );
  }

  private lstm(n: number, rows: number): void {
    const { cellInput, hidden: H } = this.dims;
    const G = this.gateCols;
    const K = cellInput + H;
    this.mem.gemm(
      this.cellIn.ptr,
      this.cellStride * 4,
      K,
      this.kernel.ptr,
      G,
      this.inputBias.ptr,
      this.gx.ptr,
      G * 4,
      rows,
      0,
    );
    const cPrev = this.cPrev as Buffer;
    const cNew = this.cNew as Buffer;
    this.mem.lstmGates(this.gx.ptr, cPrev.ptr, this.hNew.ptr, cNew.ptr, n, this.h4, G);
  }

  private writeState(n: number, nextState: Float32Array): void {
    const { hidden: H, state: S } = this.dims;
    const h4 = this.h4;
    const hNew = this.hNew.view;
    const cNew = this.cNew?.view;
    for (let r = 0; r < n; r++) {
      nextState.set(hNew.subarray(r * h4, r * h4 + H), r * S);
      if (cNew) nextState.set(cNew.subarray(r * h4, r * h4 + H), r * S + H);
    }
  }

  private applyHead(n: number, rows: number, y: Float32Array): void {
    const { hidden: H, labels: L } = this.dims;
    const LC = this.labelCols;
    const { gemm } = this.mem;
    gemm(
      this.hNew.ptr,
      this.h4 * 4,
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
