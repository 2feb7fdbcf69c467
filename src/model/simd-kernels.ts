import { type Bytes, type FunctionDef, moduleBytes, op } from './wasm-encoding.js';

/**
 * out[r][j] = act(bias[j] + Σ_k in[r][k] · w[k][j]) for a block of rows, as WebAssembly SIMD.
 *
 * Why WebAssembly: the best scalar JavaScript loop measured on the target 2-core machine needs ~6.6 ms for the
 * (64, 128) GRU gates at batch 256, over the 3 ms budget; 4-lane f32 SIMD does it in ~0.7 ms.
 *
 * Loop order (mirrored by the WGSL kernel): for each block of 4 rows, for each block of 8 gate columns, keep 4×8
 * accumulators in registers, walk k in order adding in[r][k] · w[k][j..j+7] (w row-major [K][cols]). Every row
 * accumulates in the same order (bias first, then k = 0..K−1, one f32 multiply and one f32 add per term — no FMA,
 * which would round differently on different CPUs), so a row's bits never depend on which rows share its batch.
 *
 * Arguments are byte addresses and strides into the shared memory: rows must be a multiple of 4 and cols of 8;
 * callers pad (padding rows compute garbage that is ignored; padding columns must hold zero weights).
 */

// Parameters.
const IN = 0;
const IN_STRIDE = 1;
const K = 2;
const W = 3;
const COLS = 4;
const BIAS = 5;
const OUT = 6;
const OUT_STRIDE = 7;
const ROWS = 8;
const RELU = 9;
const PARAMS = 10;
// i32 locals.
const R = 10;
const J = 11;
const KK = 12;
const WP = 13;
const OP = 14;
const W_STRIDE = 15;
const XP = [16, 17, 18, 19] as const;
const I32_LOCALS = 10;
// v128 locals: 8 accumulators (row a, half b at ACC + 2a + b), two weight vectors, one splat.
const ACC = 20;
const WA = 28;
const WB = 29;
const S = 30;
const V128_LOCALS = 11;

function gemmBody(): Bytes {
  const b: number[] = [];
  const emit = (...parts: Bytes[]): void => {
    for (const p of parts) b.push(...p);
  };
  const addr = (base: number, index: number): Bytes => [
    ...op.get(base),
    ...op.get(index),
    ...op.i32(4),
    ...op.i32Mul,
    ...op.i32Add,
  ];
  emit(op.get(COLS), op.i32(4), op.i32Mul, op.set(W_STRIDE));
  emit(op.i32(0), op.set(R));
  emit(op.loop); // rows, 4 at a time
  emit(op.get(IN), op.get(R), op.get(IN_STRIDE), op.i32Mul, op.i32Add, op.set(XP[0]));
  for (let a = 1; a < 4; a++)
    emit(op.get(XP[a - 1] as number), op.get(IN_STRIDE), op.i32Add, op.set(XP[a] as number));
  emit(op.i32(0), op.set(J));
  emit(op.loop); // columns, 8 at a time
  for (let a = 0; a < 4; a++) {
    emit(addr(BIAS, J), op.v128Load(0), op.set(ACC + 2 * a));
    emit(addr(BIAS, J), op.v128Load(16), op.set(ACC + 2 * a + 1));
  }
  emit(addr(W, J), op.set(WP));
  emit(op.i32(0), op.set(KK));
  emit(op.loop); // k
  emit(op.get(WP), op.v128Load(0), op.set(WA), op.get(WP), op.v128Load(16), op.set(WB));
  for (let a = 0; a < 4; a++) {
    emit(addr(XP[a] as number, KK), op.v128Load32Splat(0), op.set(S));
    emit(op.get(ACC + 2 * a), op.get(S), op.get(WA), op.f32x4Mul, op.f32x4Add, op.set(ACC + 2 * a));
    emit(op.get(ACC + 2 * a + 1), op.get(S), op.get(WB), op.f32x4Mul, op.f32x4Add, op.set(ACC + 2 * a + 1));
  }
  emit(op.get(WP), op.get(W_STRIDE), op.i32Add, op.set(WP));
  emit(op.get(KK), op.i32(1), op.i32Add, op.tee(KK), op.get(K), op.i32LtU, op.brIf(0));
  emit(op.end);
  emit(op.get(RELU), op.if);
  for (let i = 0; i < 8; i++) emit(op.get(ACC + i), op.v128Const([0, 0, 0, 0]), op.f32x4Max, op.set(ACC + i));
  emit(op.end);
  emit(addr(OUT, J), op.get(R), op.get(OUT_STRIDE), op.i32Mul, op.i32Add, op.set(OP));
  for (let a = 0; a < 4; a++) {
    emit(op.get(OP), op.get(ACC + 2 * a), op.v128Store(0));
    emit(op.get(OP), op.get(ACC + 2 * a + 1), op.v128Store(16));
    emit(op.get(OP), op.get(OUT_STRIDE), op.i32Add, op.set(OP));
  }
  emit(op.get(J), op.i32(8), op.i32Add, op.tee(J), op.get(COLS), op.i32LtU, op.brIf(0));
  emit(op.end);
  emit(op.get(R), op.i32(4), op.i32Add, op.tee(R), op.get(ROWS), op.i32LtU, op.brIf(0));
  emit(op.end);
  return b;
}

const GEMM: FunctionDef = {
  exportName: 'gemm',
  params: PARAMS,
  i32Locals: I32_LOCALS,
  v128Locals: V128_LOCALS,
  body: gemmBody(),
};

/** Compiled once: the module is immutable and every kernel instantiates it over its own memory. */
const GEMM_MODULE = new WebAssembly.Module(moduleBytes([GEMM]));

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
  relu: number,
) => void;

export const ROW_BLOCK = 4;
export const COL_BLOCK = 8;
export const roundUp = (n: number, block: number): number => Math.ceil(n / block) * block;

/**
 * A linear allocator over one WebAssembly memory, handing out 64-byte aligned Float32Array views. Sized once up
 * front: growing the memory would detach every view the kernel holds.
 */
export class KernelMemory {
  readonly memory: WebAssembly.Memory;
  readonly gemm: GemmFn;
  private next = 0;

  constructor(bytes: number) {
    const pages = Math.max(1, Math.ceil((bytes + 64) / 65536));
    this.memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    const instance = new WebAssembly.Instance(GEMM_MODULE, { env: { memory: this.memory } });
    this.gemm = instance.exports['gemm'] as GemmFn;
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
