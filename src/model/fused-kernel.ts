import type { ModelDims } from './config.js';
import { COL_BLOCK, type PackedWeights, packWeights, roundUp } from './packed-weights.js';
import { GEMM_ACTIVATION, KernelMemory, memoryBytes, ROW_BLOCK } from './simd-kernels.js';
import { type BackendName, checkStepArgs, type StepKernel } from './step-kernel.js';
import type { Model } from './weights.js';

interface Buffer {
  readonly view: Float32Array;
  readonly ptr: number;
}

const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));

/**
 * The `cpu-fused` backend: the whole model step (normalization, encoders, fusion, GRU/LSTM cell, head) over
 * preallocated buffers in one WebAssembly memory; matrix products and gate nonlinearities run as the SIMD
 * functions of simd-kernels.ts, on the weight layout of packed-weights.ts. It allocates nothing per step. The
 * GRU's gates of x and of h are each one fused product over all 3 gate blocks (kept apart because of
 * reset_after); without reset_after the candidate's recurrent product (r ⊙ h) U_h follows as a third one, once r
 * is known. The LSTM's four gates are one product over [x | h]. A fused encoder (imported Keras models) runs its
 * dense layers over the whole normalized input instead of the per-modality encoders.
 */
export class FusedStepKernel implements StepKernel {
  readonly backend: BackendName = 'cpu-fused';
  readonly device = 'cpu' as const;
  readonly dims: ModelDims;
  readonly maxBatch: number;

  private readonly mem: KernelMemory;
  private readonly packed: PackedWeights;
  private readonly mean: Float64Array;
  private readonly std: Float64Array;
  /** Floats per cell-input row: [encoders | mask | h | 8 floats of slack for padding spill and H4 reads]. */
  private readonly cellStride: number;
  private readonly weights: Buffer;
  private readonly xn: Buffer;
  private readonly cellIn: Buffer;
  private readonly gx: Buffer;
  private readonly gh: Buffer | undefined;
  /** GRU without reset_after: r ⊙ h, [rows][H4]. */
  private readonly resetHidden: Buffer | undefined;
  /** Outputs of the fused encoder's layers but the last (which writes the cell input), [rows][cols]. */
  private readonly denseOut: readonly Buffer[];
  private readonly cPrev: Buffer | undefined;
  private readonly cNew: Buffer | undefined;
  private readonly hNew: Buffer;
  private readonly logits: Buffer;

  constructor(model: Model, maxBatch: number) {
    const p = packWeights(model);
    const d = p.dims;
    this.packed = p;
    this.dims = d;
    this.maxBatch = maxBatch;
    this.mean = Float64Array.from(model.config.normalization.mean);
    this.std = Float64Array.from(model.config.normalization.std);
    const rows = roundUp(maxBatch, ROW_BLOCK);
    this.cellStride = d.cellInput + d.hidden + COL_BLOCK;
    const G = p.gateCols;
    const dense = p.offsets.dense;
    const resetBefore = p.isGru && !p.resetAfter;
    const sizes = [
      p.data.length,
      rows * d.input,
      rows * this.cellStride,
      rows * G,
      ...(p.isGru ? [rows * G] : [rows * p.h4, rows * p.h4]),
      ...(resetBefore ? [rows * p.h4] : []),
      ...dense.slice(0, -1).map((layer) => rows * layer.cols),
      rows * p.h4,
      rows * p.labelCols,
    ];
    this.mem = new KernelMemory(memoryBytes(sizes));
    const a = (n: number): Buffer => this.mem.alloc(n);
    this.weights = a(p.data.length);
    this.weights.view.set(p.data);
    this.xn = a(rows * d.input);
    this.cellIn = a(rows * this.cellStride);
    this.gx = a(rows * G);
    if (p.isGru) this.gh = a(rows * G);
    else {
      this.cPrev = a(rows * p.h4);
      this.cNew = a(rows * p.h4);
    }
    if (resetBefore) this.resetHidden = a(rows * p.h4);
    this.denseOut = dense.slice(0, -1).map((layer) => a(rows * layer.cols));
    this.hNew = a(rows * p.h4);
    this.logits = a(rows * p.labelCols);
  }

  step(n: number, x: Float32Array, state: Float32Array, y: Float32Array, nextState: Float32Array): void {
    checkStepArgs(this, n, x, state, y, nextState);
    const rows = roundUp(n, ROW_BLOCK);
    this.normalize(n, x);
    if (this.packed.offsets.dense.length > 0) this.encodeFused(rows);
    else this.encode(rows);
    this.fillCellInput(n, state);
    if (this.packed.isGru) this.gru(n, rows);
    else this.lstm(n, rows);
    this.writeState(n, nextState);
    this.applyHead(n, rows, y);
  }

  dispose(): void {
    // Nothing to free: the WebAssembly memory goes with the object.
  }

  /** Byte address of a packed weight offset. */
  private w(offset: number): number {
    return this.weights.ptr + offset * 4;
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
    for (const e of this.packed.offsets.encoders)
      this.mem.gemm(
        this.xn.ptr + e.inputOffset * 4,
        F * 4,
        e.inputs,
        this.w(e.kernel),
        e.cols,
        this.w(e.bias),
        this.cellIn.ptr + e.outputOffset * 4,
        this.cellStride * 4,
        rows,
        1,
      );
  }

  /**
   * The fused encoder's dense layers, in order: each reads the previous one's padded rows (the first reads x'); the
   * last writes the cell input, its padding columns spilling into the h slot, which fillCellInput writes after it.
   */
  private encodeFused(rows: number): void {
    const layers = this.packed.offsets.dense;
    let input = this.xn.ptr;
    let inputStride = this.dims.input * 4;
    layers.forEach((layer, i) => {
      const last = i === layers.length - 1;
      const out = last ? this.cellIn.ptr : (this.denseOut[i] as Buffer).ptr;
      const outStride = last ? this.cellStride * 4 : layer.cols * 4;
      const act = GEMM_ACTIVATION[layer.activation];
      this.mem.gemm(
        input,
        inputStride,
        layer.inputs,
        this.w(layer.kernel),
        layer.cols,
        this.w(layer.bias),
        out,
        outStride,
        rows,
        act,
      );
      input = out;
      inputStride = outStride;
    });
  }

  /**
   * Completes the cell input rows [encoded | h]: the normalized mask after the per-modality encoders, or x' itself
   * for a fused encoder without layers; then the previous h (and c for an LSTM) from the state.
   */
  private fillCellInput(n: number, state: Float32Array): void {
    const { input: F, maskOffset, cellInput, hidden: H, state: S } = this.dims;
    const xn = this.xn.view;
    const cell = this.cellIn.view;
    const stride = this.cellStride;
    const fused = this.packed.fusedEncoder;
    const direct = fused && this.packed.offsets.dense.length === 0;
    const maskAt = cellInput - 3;
    for (let r = 0; r < n; r++) {
      const c = r * stride;
      if (direct) cell.set(xn.subarray(r * F, (r + 1) * F), c);
      else if (!fused)
        for (let i = 0; i < 3; i++) cell[c + maskAt + i] = xn[r * F + maskOffset + i] as number;
      cell.set(state.subarray(r * S, r * S + H), c + cellInput);
      this.cPrev?.view.set(state.subarray(r * S + H, (r + 1) * S), r * this.packed.h4);
    }
  }

  private gru(n: number, rows: number): void {
    const { cellInput, hidden: H } = this.dims;
    const { gateCols: G, h4, offsets: o } = this.packed;
    const stride = this.cellStride * 4;
    const gh = this.gh as Buffer;
    const { gemm } = this.mem;
    gemm(
      this.cellIn.ptr,
      stride,
      cellInput,
      this.w(o.kernel),
      G,
      this.w(o.inputBias),
      this.gx.ptr,
      G * 4,
      rows,
      0,
    );
    const hPrev = this.cellIn.ptr + cellInput * 4;
    gemm(hPrev, stride, H, this.w(o.recurrent), G, this.w(o.recurrentBias), gh.ptr, G * 4, rows, 0);
    if (!this.packed.resetAfter) {
      // Replace gh's candidate block (h U_h) with (r ⊙ h) U_h; the zero recurrent bias serves as its bias.
      const rh = this.resetHidden as Buffer;
      this.mem.gruResetHidden(this.gx.ptr, gh.ptr, hPrev, stride, rh.ptr, n, h4, G);
      const CC = this.packed.candidateCols;
      gemm(
        rh.ptr,
        h4 * 4,
        H,
        this.w(o.recurrentCandidate),
        CC,
        this.w(o.recurrentBias),
        gh.ptr + 2 * h4 * 4,
        G * 4,
        rows,
        0,
      );
    }
    this.mem.gruGates(
      this.gx.ptr,
      gh.ptr,
      hPrev,
      stride,
      this.hNew.ptr,
      n,
      h4,
      G,
      this.packed.resetAfter ? 1 : 0,
    );
  }

  private lstm(n: number, rows: number): void {
    const { gateCols: G, h4, cellRows, offsets: o } = this.packed;
    const stride = this.cellStride * 4;
    this.mem.gemm(
      this.cellIn.ptr,
      stride,
      cellRows,
      this.w(o.kernel),
      G,
      this.w(o.inputBias),
      this.gx.ptr,
      G * 4,
      rows,
      0,
    );
    const cPrev = this.cPrev as Buffer;
    const cNew = this.cNew as Buffer;
    this.mem.lstmGates(this.gx.ptr, cPrev.ptr, this.hNew.ptr, cNew.ptr, n, h4, G);
  }

  private writeState(n: number, nextState: Float32Array): void {
    const { hidden: H, state: S } = this.dims;
    const h4 = this.packed.h4;
    const hNew = this.hNew.view;
    const cNew = this.cNew?.view;
    for (let r = 0; r < n; r++) {
      nextState.set(hNew.subarray(r * h4, r * h4 + H), r * S);
      if (cNew) nextState.set(cNew.subarray(r * h4, r * h4 + H), r * S + H);
    }
  }

  private applyHead(n: number, rows: number, y: Float32Array): void {
    const { hidden: H, labels: L } = this.dims;
    const { labelCols: LC, h4, softmax, offsets: o } = this.packed;
    this.mem.gemm(
      this.hNew.ptr,
      h4 * 4,
      H,
      this.w(o.headKernel),
      LC,
      this.w(o.headBias),
      this.logits.ptr,
      LC * 4,
      rows,
      0,
    );
    const logits = this.logits.view;
    for (let r = 0; r < n; r++) {
      const at = r * LC;
      if (!softmax) {
        for (let j = 0; j < L; j++) y[r * L + j] = sigmoid(logits[at + j] as number);
        continue;
      }
      let max = Number.NEGATIVE_INFINITY;
      for (let j = 0; j < L; j++) max = Math.max(max, logits[at + j] as number);
      let sum = 0;
      for (let j = 0; j < L; j++) sum += Math.exp((logits[at + j] as number) - max);
      for (let j = 0; j < L; j++) y[r * L + j] = Math.exp((logits[at + j] as number) - max) / sum;
    }
  }
}
