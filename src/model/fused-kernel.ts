import type { ModelDims } from './config.js';
import {
  COL_BLOCK,
  type PackedCellGroup,
  type PackedWeights,
  type PackOptions,
  packWeights,
  roundUp,
} from './packed-weights.js';
import { GEMM_ACTIVATION, KernelMemory, memoryBytes, ROW_BLOCK } from './simd-kernels.js';
import { type BackendName, checkStepArgs, type StepKernel } from './step-kernel.js';
import type { Model } from './weights.js';

interface Buffer {
  readonly view: Float32Array;
  readonly ptr: number;
}

/** One group of the cell (packed-weights.ts) with its own buffers, stepped as a cell of its own. */
interface CellGroupBuffers {
  readonly packed: PackedCellGroup;
  /** {@link cellStride} */
  readonly stride: number;
  readonly cellIn: Buffer;
  readonly gx: Buffer;
  readonly gh: Buffer | undefined;
  /** GRU without reset_after: r ⊙ h, [rows][H4]. */
  readonly resetHidden: Buffer | undefined;
  readonly cPrev: Buffer | undefined;
  readonly cNew: Buffer | undefined;
  /** The group's new h, [rows][H4]; the kernel's whole new h when the cell is one group. */
  readonly hNew: Buffer;
}

const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));

/**
 * packWeights' options, but splitCell defaults to true: each group of the cell (an ensemble's members,
 * cell-groups.ts) steps apart, the same numbers without multiplying the zero blocks between members.
 */
export type FusedStepKernelOptions = PackOptions;

/** Floats per cell-input row of a group: [encoders | mask | h | 8 floats of slack for padding spill and H4 reads]. */
const cellStride = (g: PackedCellGroup): number => g.cellInput + g.hidden + COL_BLOCK;

/**
 * The `cpu-fused` backend: the whole model step (normalization, encoders, fusion, GRU/LSTM cell, head) over
 * preallocated buffers in one WebAssembly memory; matrix products and gate nonlinearities run as the SIMD
 * functions of simd-kernels.ts, on the weight layout of packed-weights.ts. It allocates nothing per step. The
 * GRU's gates of x and of h are each one fused product over all 3 gate blocks (kept apart because of
 * reset_after); without reset_after the candidate's recurrent product (r ⊙ h) U_h follows as a third one, once r
 * is known. The LSTM's four gates are one product over [x | h]. A fused encoder (imported Keras models) runs its
 * dense layers over the whole normalized input instead of the per-modality encoders. An ensemble's cell runs as
 * its members' cells, one after the other, each over its own encoder outputs and state, so a step costs the sum of
 * the members' steps rather than the square of the merged width; the head reads their h side by side.
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
  private readonly weights: Buffer;
  private readonly xn: Buffer;
  /** Outputs of the fused encoder's layers but the last (which writes the cell input), [rows][cols]. */
  private readonly denseOut: readonly Buffer[];
  private readonly groups: readonly CellGroupBuffers[];
  /** The whole new h, [rows][H4], that the head reads. */
  private readonly hNew: Buffer;
  private readonly logits: Buffer;

  constructor(model: Model, maxBatch: number, options: FusedStepKernelOptions = {}) {
    const p = packWeights(model, { ...options, splitCell: options.splitCell ?? true });
    const d = p.dims;
    this.packed = p;
    this.dims = d;
    this.maxBatch = maxBatch;
    this.mean = Float64Array.from(model.config.normalization.mean);
    this.std = Float64Array.from(model.config.normalization.std);
    const rows = roundUp(maxBatch, ROW_BLOCK);
    const dense = p.offsets.dense;
    const split = p.groups.length > 1;
    const resetBefore = p.isGru && !p.resetAfter;
    const groupSizes = (g: PackedCellGroup): number[] => [
      rows * cellStride(g),
      rows * g.gateCols,
      ...(p.isGru ? [rows * g.gateCols] : [rows * g.h4, rows * g.h4]),
      ...(resetBefore ? [rows * g.h4] : []),
      ...(split ? [rows * g.h4] : []),
    ];
    const sizes = [
      p.data.length,
      rows * d.input,
      ...dense.slice(0, -1).map((layer) => rows * layer.cols),
      rows * p.h4,
      rows * p.labelCols,
      ...p.groups.flatMap(groupSizes),
    ];
    this.mem = new KernelMemory(memoryBytes(sizes));
    const a = (n: number): Buffer => this.mem.alloc(n);
    this.weights = a(p.data.length);
    this.weights.view.set(p.data);
    this.xn = a(rows * d.input);
    this.denseOut = dense.slice(0, -1).map((layer) => a(rows * layer.cols));
    this.hNew = a(rows * p.h4);
    this.logits = a(rows * p.labelCols);
    this.groups = p.groups.map((g) => {
      const stride = cellStride(g);
      return {
        packed: g,
        stride,
        cellIn: a(rows * stride),
        gx: a(rows * g.gateCols),
        gh: p.isGru ? a(rows * g.gateCols) : undefined,
        cPrev: p.isGru ? undefined : a(rows * g.h4),
        cNew: p.isGru ? undefined : a(rows * g.h4),
        resetHidden: resetBefore ? a(rows * g.h4) : undefined,
        hNew: split ? a(rows * g.h4) : this.hNew,
      };
    });
  }

  step(n: number, x: Float32Array, state: Float32Array, y: Float32Array, nextState: Float32Array): void {
    checkStepArgs(this, n, x, state, y, nextState);
    const rows = roundUp(n, ROW_BLOCK);
    this.normalize(n, x);
    if (this.packed.offsets.dense.length > 0) this.encodeFused(rows);
    for (const g of this.groups) {
      this.encode(g, rows);
      this.fillCellInput(g, n, state);
      if (this.packed.isGru) this.gru(g, n, rows);
      else this.lstm(g, n, rows);
      this.writeState(g, n, nextState);
    }
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

  private encode(g: CellGroupBuffers, rows: number): void {
    const F = this.dims.input;
    // In modality order: a block's zero padding columns spill into the next slice, which is written after it.
    for (const e of g.packed.encoders)
      this.mem.gemm(
        this.xn.ptr + e.inputOffset * 4,
        F * 4,
        e.inputs,
        this.w(e.kernel),
        e.cols,
        this.w(e.bias),
        g.cellIn.ptr + e.outputOffset * 4,
        g.stride * 4,
        rows,
        1,
      );
  }

  /**
   * The fused encoder's dense layers, in order: each reads the previous one's padded rows (the first reads x'); the
   * last writes the cell input (of the cell's one group), its padding columns spilling into the h slot, which
   * fillCellInput writes after it.
   */
  private encodeFused(rows: number): void {
    const layers = this.packed.offsets.dense;
    const cell = this.groups[0] as CellGroupBuffers;
    let input = this.xn.ptr;
    let inputStride = this.dims.input * 4;
    layers.forEach((layer, i) => {
      const last = i === layers.length - 1;
      const out = last ? cell.cellIn.ptr : (this.denseOut[i] as Buffer).ptr;
      const outStride = last ? cell.stride * 4 : layer.cols * 4;
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
   * Completes the group's cell input rows [encoded | h]: the normalized mask after the per-modality encoders, or
   * x' itself for a fused encoder without layers; then the group's previous h (and c for an LSTM) from the state.
   */
  private fillCellInput(g: CellGroupBuffers, n: number, state: Float32Array): void {
    const { input: F, maskOffset, hidden: H, state: S } = this.dims;
    const { cellInput, hiddenStart, hidden, h4 } = g.packed;
    const xn = this.xn.view;
    const cell = g.cellIn.view;
    const fused = this.packed.fusedEncoder;
    const direct = fused && this.packed.offsets.dense.length === 0;
    const maskAt = cellInput - 3;
    const cPrev = g.cPrev?.view;
    // Index loops rather than subarray copies: a view per row and group would be garbage at every step.
    for (let r = 0; r < n; r++) {
      const c = r * g.stride;
      if (direct) for (let i = 0; i < F; i++) cell[c + i] = xn[r * F + i] as number;
      else if (!fused)
        for (let i = 0; i < 3; i++) cell[c + maskAt + i] = xn[r * F + maskOffset + i] as number;
      const h = r * S + hiddenStart;
      for (let i = 0; i < hidden; i++) cell[c + cellInput + i] = state[h + i] as number;
      if (cPrev) for (let i = 0; i < hidden; i++) cPrev[r * h4 + i] = state[h + H + i] as number;
    }
  }

  private gru(g: CellGroupBuffers, n: number, rows: number): void {
    const { cellInput, hidden: H, gateCols: G, h4, candidateCols: CC } = g.packed;
    const o = g.packed;
    const stride = g.stride * 4;
    const gh = g.gh as Buffer;
    const { gemm } = this.mem;
    gemm(g.cellIn.ptr, stride, cellInput, this.w(o.kernel), G, this.w(o.inputBias), g.gx.ptr, G * 4, rows, 0);
    const hPrev = g.cellIn.ptr + cellInput * 4;
    gemm(hPrev, stride, H, this.w(o.recurrent), G, this.w(o.recurrentBias), gh.ptr, G * 4, rows, 0);
    if (!this.packed.resetAfter) {
      // Replace gh's candidate block (h U_h) with (r ⊙ h) U_h; the zero recurrent bias serves as its bias.
      const rh = g.resetHidden as Buffer;
      this.mem.gruResetHidden(g.gx.ptr, gh.ptr, hPrev, stride, rh.ptr, n, h4, G);
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
    this.mem.gruGates(g.gx.ptr, gh.ptr, hPrev, stride, g.hNew.ptr, n, h4, G, this.packed.resetAfter ? 1 : 0);
  }

  private lstm(g: CellGroupBuffers, n: number, rows: number): void {
    const { gateCols: G, h4, cellRows, kernel, inputBias } = g.packed;
    const stride = g.stride * 4;
    this.mem.gemm(
      g.cellIn.ptr,
      stride,
      cellRows,
      this.w(kernel),
      G,
      this.w(inputBias),
      g.gx.ptr,
      G * 4,
      rows,
      0,
    );
    const cPrev = g.cPrev as Buffer;
    const cNew = g.cNew as Buffer;
    this.mem.lstmGates(g.gx.ptr, cPrev.ptr, g.hNew.ptr, cNew.ptr, n, h4, G);
  }

  /** The group's new h (and c) into the state, and its h beside the other groups' for the head. */
  private writeState(g: CellGroupBuffers, n: number, nextState: Float32Array): void {
    const { hidden: H, state: S } = this.dims;
    const { hiddenStart, hidden, h4 } = g.packed;
    const hNew = g.hNew.view;
    const cNew = g.cNew?.view;
    const whole = this.hNew.view;
    const split = g.hNew !== this.hNew;
    const wholeH4 = this.packed.h4;
    for (let r = 0; r < n; r++) {
      const to = r * S + hiddenStart;
      for (let i = 0; i < hidden; i++) {
        const v = hNew[r * h4 + i] as number;
        nextState[to + i] = v;
        if (split) whole[r * wholeH4 + hiddenStart + i] = v;
        if (cNew) nextState[to + H + i] = cNew[r * h4 + i] as number;
      }
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
