import { type Bytes, FunctionBuilder, type FunctionDef, moduleBytes, op } from '../core/wasm-encoding.js';
import { roundUp } from './packed-weights.js';

/**
 * The fused CPU kernel's inner loops as WebAssembly SIMD (4 × f32 lanes), written with the encoder of
 * core/wasm-encoding.ts.
 *
 * Why WebAssembly: on the target 2-core machine the best scalar JavaScript loop needs ~6.6 ms for the (64, 128)
 * GRU gate products at batch 256 and Math.exp/Math.tanh another ~1.7 ms for the gate nonlinearities; the
 * 3 ms budget needs SIMD for both.
 *
 * Determinism: every row is computed by the same instruction sequence whatever the batch, one f32 multiply and one
 * f32 add per term (never FMA, which rounds differently on different CPUs), so a row's bits never depend on which
 * rows share its batch or where it sits in it.
 */

/** base + index × 4 (index counted in floats). */
const addr = (base: number, index: number): Bytes => [
  ...op.get(base),
  ...op.get(index),
  ...op.i32(4),
  ...op.i32Mul,
  ...op.i32Add,
];

const splat = (v: number): Bytes => op.v128Const([v, v, v, v]);

/** The `act` argument of gemm. */
export const GEMM_ACTIVATION = { linear: 0, relu: 1, tanh: 2, sigmoid: 3 } as const;

/**
 * gemm(in, inStride, K, w, cols, bias, out, outStride, rows, act):
 * out[r][j] = act(bias[j] + Σ_k in[r][k] · w[k][j]), w row-major [K][cols], strides in bytes; act is one of
 * {@link GEMM_ACTIVATION}.
 * rows must be a multiple of 4 and cols of 8 (callers pad; padding columns hold zero weights).
 * Loop order (mirrored by the WGSL kernel): 4-row blocks, then 8-column blocks with 4 × 8 accumulators in
 * registers, then k in order — bias first, then k = 0..K−1.
 */
function gemm(): FunctionDef {
  const [IN, IN_STRIDE, K, W, COLS, BIAS, OUT, OUT_STRIDE, ROWS, ACT] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const f = new FunctionBuilder('gemm', 10);
  const [r, j, kb, kEnd, wp, outp, wStride] = [f.i32(), f.i32(), f.i32(), f.i32(), f.i32(), f.i32(), f.i32()];
  const xp = [f.i32(), f.i32(), f.i32(), f.i32()];
  const acc = Array.from({ length: 8 }, () => f.v128());
  const [wa, wb, s] = [f.v128(), f.v128(), f.v128()];
  const tmp = [f.v128(), f.v128()] as const;
  f.emit(op.get(COLS), op.i32(4), op.i32Mul, op.set(wStride), op.i32(0), op.set(r));
  f.emit(op.get(K), op.i32(4), op.i32Mul, op.set(kEnd));
  f.loop(r, 4, op.get(ROWS), () => {
    f.emit(op.get(IN), op.get(r), op.get(IN_STRIDE), op.i32Mul, op.i32Add, op.set(xp[0] as number));
    for (let a = 1; a < 4; a++)
      f.emit(op.get(xp[a - 1] as number), op.get(IN_STRIDE), op.i32Add, op.set(xp[a] as number));
    f.emit(op.i32(0), op.set(j));
    f.loop(j, 8, op.get(COLS), () => {
      for (let a = 0; a < 4; a++)
        f.emit(addr(BIAS, j), op.v128Load(0), op.set(acc[2 * a] as number)).emit(
          addr(BIAS, j),
          op.v128Load(16),
          op.set(acc[2 * a + 1] as number),
        );
      f.emit(addr(W, j), op.set(wp), op.i32(0), op.set(kb));
      // kb walks k in bytes so the inner loop adds no multiplies to the address arithmetic.
      f.loop(kb, 4, op.get(kEnd), () => {
        f.emit(op.get(wp), op.v128Load(0), op.set(wa), op.get(wp), op.v128Load(16), op.set(wb));
        for (let a = 0; a < 4; a++) {
          const lo = acc[2 * a] as number;
          const hi = acc[2 * a + 1] as number;
          f.emit(op.get(xp[a] as number), op.get(kb), op.i32Add, op.v128Load32Splat(0), op.set(s));
          f.emit(op.get(lo), op.get(s), op.get(wa), op.f32x4Mul, op.f32x4Add, op.set(lo));
          f.emit(op.get(hi), op.get(s), op.get(wb), op.f32x4Mul, op.f32x4Add, op.set(hi));
        }
        f.emit(op.get(wp), op.get(wStride), op.i32Add, op.set(wp));
      });
      const when = (code: number, apply: (v: number) => void): void => {
        f.emit(op.get(ACT), op.i32(code), op.i32Eq, op.if);
        for (const v of acc) apply(v);
        f.emit(op.end);
      };
      when(GEMM_ACTIVATION.relu, (v) => f.emit(op.get(v), splat(0), op.f32x4Max, op.set(v)));
      when(GEMM_ACTIVATION.tanh, (v) => emitTanh(f, v, tmp));
      when(GEMM_ACTIVATION.sigmoid, (v) => emitSigmoid(f, v, tmp));
      f.emit(addr(OUT, j), op.get(r), op.get(OUT_STRIDE), op.i32Mul, op.i32Add, op.set(outp));
      for (let a = 0; a < 4; a++)
        f.emit(op.get(outp), op.get(acc[2 * a] as number), op.v128Store(0))
          .emit(op.get(outp), op.get(acc[2 * a + 1] as number), op.v128Store(16))
          .emit(op.get(outp), op.get(OUT_STRIDE), op.i32Add, op.set(outp));
    });
  });
  return f.build();
}

/**
 * e^x in every lane (Cephes expf: x = n·ln2 + r with n = round(x·log2 e), a degree-6 polynomial in r, then
 * 2^n built in the exponent bits). Within 2 ulp of the true value; inputs clamped to [−87, 88] so 2^n stays a
 * normal float. Leaves the result on the stack; `tmp` are two scratch v128 locals, `x` is overwritten.
 */
function emitExp(f: FunctionBuilder, x: number, tmp: readonly [number, number]): void {
  const [fx, y] = tmp;
  f.emit(op.get(x), splat(-87), op.f32x4Max, splat(88), op.f32x4Min, op.set(x));
  f.emit(op.get(x), splat(Math.LOG2E), op.f32x4Mul, op.f32x4Nearest, op.set(fx));
  // r = x − n·ln2, with ln2 split in a part exact in f32 and a correction.
  f.emit(op.get(x), op.get(fx), splat(0.693359375), op.f32x4Mul, op.f32x4Sub);
  f.emit(op.get(fx), splat(-2.1219444e-4), op.f32x4Mul, op.f32x4Sub, op.set(x));
  f.emit(splat(1.98756915e-4), op.set(y));
  for (const p of [1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1])
    f.emit(op.get(y), op.get(x), op.f32x4Mul, splat(p), op.f32x4Add, op.set(y));
  // y·r² + r + 1
  f.emit(
    op.get(y),
    op.get(x),
    op.f32x4Mul,
    op.get(x),
    op.f32x4Mul,
    op.get(x),
    op.f32x4Add,
    splat(1),
    op.f32x4Add,
  );
  // × 2^n: (n + 127) << 23 reinterpreted as f32.
  f.emit(op.get(fx), op.i32x4TruncSatF32x4S, op.v128ConstI32([127, 127, 127, 127]), op.i32x4Add);
  f.emit(op.i32(23), op.i32x4Shl, op.f32x4Mul);
}

/** local ← 1 / (1 + e^(−local)) */
function emitSigmoid(f: FunctionBuilder, v: number, tmp: readonly [number, number]): void {
  f.emit(op.get(v), op.f32x4Neg, op.set(v));
  emitExp(f, v, tmp);
  f.emit(op.set(v), splat(1), splat(1), op.get(v), op.f32x4Add, op.f32x4Div, op.set(v));
}

/** local ← tanh(local) = 1 − 2 / (e^(2·local) + 1); saturates cleanly to ±1 thanks to the clamp in exp. */
function emitTanh(f: FunctionBuilder, v: number, tmp: readonly [number, number]): void {
  f.emit(op.get(v), op.get(v), op.f32x4Add, op.set(v));
  emitExp(f, v, tmp);
  f.emit(
    op.set(v),
    splat(1),
    splat(2),
    op.get(v),
    splat(1),
    op.f32x4Add,
    op.f32x4Div,
    op.f32x4Sub,
    op.set(v),
  );
}

/**
 * gruGates(gx, gh, hPrev, hPrevStride, hNew, rows, H4, G, resetAfter): the GRU update for rows 0..rows−1.
 * gx, gh: [rows][G] with gate blocks z, r, h each H4 (= H rounded up to 4) wide; hPrev rows at hPrevStride bytes,
 * readable for H4 floats; hNew: [rows][H4]. Lanes past H compute values nobody reads. With resetAfter (1) the
 * candidate is tanh(gx_h + r · gh_h); without (0) gh_h already holds (r ⊙ h) U_h (see gruResetHidden), so it is
 * tanh(gx_h + gh_h).
 */
function gruGates(): FunctionDef {
  const [GX, GH, HPREV, HPREV_STRIDE, HNEW, ROWS, H4, G, RESET_AFTER] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const f = new FunctionBuilder('gruGates', 9);
  const [r, j, gxRow, ghRow, hpRow, hnRow] = [f.i32(), f.i32(), f.i32(), f.i32(), f.i32(), f.i32()];
  const [z, rr, c, hp] = [f.v128(), f.v128(), f.v128(), f.v128()];
  const tmp = [f.v128(), f.v128()] as const;
  const gate = (row: number, block: number): Bytes => [
    ...addr(row, j),
    ...op.get(H4),
    ...op.i32(4 * block),
    ...op.i32Mul,
    ...op.i32Add,
  ];
  f.emit(op.i32(0), op.set(r));
  f.loop(r, 1, op.get(ROWS), () => {
    f.emit(op.get(r), op.get(G), op.i32Mul, op.i32(4), op.i32Mul, op.set(gxRow));
    f.emit(
      op.get(gxRow),
      op.get(GH),
      op.i32Add,
      op.set(ghRow),
      op.get(gxRow),
      op.get(GX),
      op.i32Add,
      op.set(gxRow),
    );
    f.emit(op.get(HPREV), op.get(r), op.get(HPREV_STRIDE), op.i32Mul, op.i32Add, op.set(hpRow));
    f.emit(op.get(HNEW), op.get(r), op.get(H4), op.i32Mul, op.i32(4), op.i32Mul, op.i32Add, op.set(hnRow));
    f.emit(op.i32(0), op.set(j));
    f.loop(j, 4, op.get(H4), () => {
      f.emit(gate(gxRow, 0), op.v128Load(0), gate(ghRow, 0), op.v128Load(0), op.f32x4Add, op.set(z));
      emitSigmoid(f, z, tmp);
      f.emit(gate(gxRow, 1), op.v128Load(0), gate(ghRow, 1), op.v128Load(0), op.f32x4Add, op.set(rr));
      emitSigmoid(f, rr, tmp);
      // c = gx_h + r · gh_h (reset_after) or gx_h + gh_h; IEEE + and · commute, so the order of operands is free.
      f.emit(gate(ghRow, 2), op.v128Load(0), op.set(c));
      f.emit(op.get(RESET_AFTER), op.if, op.get(c), op.get(rr), op.f32x4Mul, op.set(c), op.end);
      f.emit(gate(gxRow, 2), op.v128Load(0), op.get(c), op.f32x4Add, op.set(c));
      emitTanh(f, c, tmp);
      f.emit(addr(hpRow, j), op.v128Load(0), op.set(hp));
      // h' = z·h + (1 − z)·c
      f.emit(addr(hnRow, j), op.get(z), op.get(hp), op.f32x4Mul);
      f.emit(splat(1), op.get(z), op.f32x4Sub, op.get(c), op.f32x4Mul, op.f32x4Add, op.v128Store(0));
    });
  });
  return f.build();
}

/**
 * gruResetHidden(gx, gh, hPrev, hPrevStride, out, rows, H4, G): out[r] = σ(gx_r + gh_r) ⊙ hPrev, the reset hidden
 * state a GRU without reset_after multiplies by U_h. Same layouts as gruGates; out: [rows][H4].
 */
function gruResetHidden(): FunctionDef {
  const [GX, GH, HPREV, HPREV_STRIDE, OUT, ROWS, H4, G] = [0, 1, 2, 3, 4, 5, 6, 7];
  const f = new FunctionBuilder('gruResetHidden', 8);
  const [r, j, gxRow, ghRow, hpRow, outRow] = [f.i32(), f.i32(), f.i32(), f.i32(), f.i32(), f.i32()];
  const rr = f.v128();
  const tmp = [f.v128(), f.v128()] as const;
  const resetGate = (row: number): Bytes => [
    ...addr(row, j),
    ...op.get(H4),
    ...op.i32(4),
    ...op.i32Mul,
    ...op.i32Add,
  ];
  f.emit(op.i32(0), op.set(r));
  f.loop(r, 1, op.get(ROWS), () => {
    f.emit(op.get(r), op.get(G), op.i32Mul, op.i32(4), op.i32Mul, op.set(gxRow));
    f.emit(op.get(gxRow), op.get(GH), op.i32Add, op.set(ghRow), op.get(gxRow), op.get(GX), op.i32Add);
    f.emit(op.set(gxRow));
    f.emit(op.get(HPREV), op.get(r), op.get(HPREV_STRIDE), op.i32Mul, op.i32Add, op.set(hpRow));
    f.emit(op.get(OUT), op.get(r), op.get(H4), op.i32Mul, op.i32(4), op.i32Mul, op.i32Add, op.set(outRow));
    f.emit(op.i32(0), op.set(j));
    f.loop(j, 4, op.get(H4), () => {
      f.emit(resetGate(gxRow), op.v128Load(0), resetGate(ghRow), op.v128Load(0), op.f32x4Add, op.set(rr));
      emitSigmoid(f, rr, tmp);
      f.emit(addr(outRow, j), op.get(rr), addr(hpRow, j), op.v128Load(0), op.f32x4Mul, op.v128Store(0));
    });
  });
  return f.build();
}

/**
 * lstmGates(g, cPrev, hNew, cNew, rows, H4, G): the LSTM update. g: [rows][G] with gate blocks i, f, c, o each
 * H4 wide; cPrev, hNew, cNew: [rows][H4].
 */
function lstmGates(): FunctionDef {
  const [GATES, CPREV, HNEW, CNEW, ROWS, H4, G] = [0, 1, 2, 3, 4, 5, 6];
  const f = new FunctionBuilder('lstmGates', 7);
  const [r, j, gRow, sRow] = [f.i32(), f.i32(), f.i32(), f.i32()];
  const [gi, gf, gc, go, c] = [f.v128(), f.v128(), f.v128(), f.v128(), f.v128()];
  const tmp = [f.v128(), f.v128()] as const;
  const gate = (block: number): Bytes => [
    ...addr(gRow, j),
    ...op.get(H4),
    ...op.i32(4 * block),
    ...op.i32Mul,
    ...op.i32Add,
    ...op.v128Load(0),
  ];
  /** base + row offset + j floats, for the [rows][H4] arrays. */
  const at = (base: number): Bytes => [
    ...op.get(base),
    ...op.get(sRow),
    ...op.i32Add,
    ...op.get(j),
    ...op.i32(4),
    ...op.i32Mul,
    ...op.i32Add,
  ];
  f.emit(op.i32(0), op.set(r));
  f.loop(r, 1, op.get(ROWS), () => {
    f.emit(op.get(GATES), op.get(r), op.get(G), op.i32Mul, op.i32(4), op.i32Mul, op.i32Add, op.set(gRow));
    f.emit(op.get(r), op.get(H4), op.i32Mul, op.i32(4), op.i32Mul, op.set(sRow));
    f.emit(op.i32(0), op.set(j));
    f.loop(j, 4, op.get(H4), () => {
      f.emit(gate(0), op.set(gi));
      emitSigmoid(f, gi, tmp);
      f.emit(gate(1), op.set(gf));
      emitSigmoid(f, gf, tmp);
      f.emit(gate(2), op.set(gc));
      emitTanh(f, gc, tmp);
      f.emit(gate(3), op.set(go));
      emitSigmoid(f, go, tmp);
      // c' = f·c + i·g, stored; then h' = o·tanh(c')
      f.emit(
        op.get(gf),
        at(CPREV),
        op.v128Load(0),
        op.f32x4Mul,
        op.get(gi),
        op.get(gc),
        op.f32x4Mul,
        op.f32x4Add,
      );
      f.emit(op.set(c), at(CNEW), op.get(c), op.v128Store(0));
      emitTanh(f, c, tmp);
      f.emit(at(HNEW), op.get(go), op.get(c), op.f32x4Mul, op.v128Store(0));
    });
  });
  return f.build();
}

const MODULE = new WebAssembly.Module(moduleBytes([gemm(), gruGates(), gruResetHidden(), lstmGates()]));

export type GemmFn = (
  inPtr: number,
  inStride: number,
  k: number,
  wPtr: number,
  cols: number,
  biasPtr: number,
  outPtr: number,
  outStride: number,
  rows: number,
  act: number,
) => void;
export type GruGatesFn = (
  gx: number,
  gh: number,
  hPrev: number,
  hPrevStride: number,
  hNew: number,
  rows: number,
  h4: number,
  g: number,
  resetAfter: number,
) => void;
export type GruResetHiddenFn = (
  gx: number,
  gh: number,
  hPrev: number,
  hPrevStride: number,
  out: number,
  rows: number,
  h4: number,
  g: number,
) => void;
export type LstmGatesFn = (
  g: number,
  cPrev: number,
  hNew: number,
  cNew: number,
  rows: number,
  h4: number,
  gCols: number,
) => void;

/** Rows per gemm block: callers pad row counts to a multiple of it. */
export const ROW_BLOCK = 4;

/**
 * One kernel's WebAssembly memory with the module instantiated over it, and a linear allocator handing out
 * 64-byte aligned Float32Array views. Sized once up front: growing the memory would detach every view.
 */
export class KernelMemory {
  readonly memory: WebAssembly.Memory;
  readonly gemm: GemmFn;
  readonly gruGates: GruGatesFn;
  readonly gruResetHidden: GruResetHiddenFn;
  readonly lstmGates: LstmGatesFn;
  private next = 0;

  constructor(bytes: number) {
    const pages = Math.max(1, Math.ceil((bytes + 64) / 65536));
    this.memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    const { exports } = new WebAssembly.Instance(MODULE, { env: { memory: this.memory } });
    this.gemm = exports['gemm'] as GemmFn;
    this.gruGates = exports['gruGates'] as GruGatesFn;
    this.gruResetHidden = exports['gruResetHidden'] as GruResetHiddenFn;
    this.lstmGates = exports['lstmGates'] as LstmGatesFn;
  }

  /** Reserves `floats` floats (zeroed) and returns a view plus its byte address for the kernel. */
  alloc(floats: number): { view: Float32Array; ptr: number } {
    const ptr = this.next;
    this.next = roundUp(ptr + floats * 4, 64);
    if (this.next > this.memory.buffer.byteLength)
      throw new RangeError(`kernel memory of ${this.memory.buffer.byteLength} bytes is too small`);
    return { view: new Float32Array(this.memory.buffer, ptr, floats), ptr };
  }
}

/** Bytes {@link KernelMemory.alloc} will use for these float counts (each rounded up to 64-byte alignment). */
export const memoryBytes = (floatCounts: readonly number[]): number =>
  floatCounts.reduce((sum, n) => sum + roundUp(n * 4, 64), 0);
