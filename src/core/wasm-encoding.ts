/**
 * The few pieces of the WebAssembly binary format (spec §5) that braid's generated kernels need: LEB128 numbers,
 * sections, the opcodes they use, including 128-bit SIMD (prefix 0xfd), and a small function builder. Enough to
 * write a module by hand at load time, which keeps a compiler toolchain (and a committed binary) out of the build.
 * Used by the model's fused GRU kernel (f32x4) and the features' log-mel kernel (f64x2).
 */

export type Bytes = readonly number[];

export function uleb(value: number): Bytes {
  const out: number[] = [];
  let v = value >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

export function sleb(value: number): Bytes {
  const out: number[] = [];
  let v = value | 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

export const vector = (items: readonly Bytes[]): Bytes => [...uleb(items.length), ...items.flat()];
export const section = (id: number, body: Bytes): Bytes => [id, ...uleb(body.length), ...body];
export const name = (text: string): Bytes => vector([...new TextEncoder().encode(text)].map((b) => [b]));

export const I32 = 0x7f;
export const F32 = 0x7d;
export const V128 = 0x7b;

const simd = (code: number): Bytes => [0xfd, ...uleb(code)];
/** A memory instruction: opcode, alignment exponent, constant byte offset. */
const mem = (opcode: Bytes, align: number, offset: number): Bytes => [...opcode, align, ...uleb(offset)];
const bytesOf = (array: Float32Array | Float64Array | Int32Array): Bytes => [...new Uint8Array(array.buffer)];

/** Instruction encoders; each returns the bytes of one instruction. */
export const op = {
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  if: [0x04, 0x40],
  end: [0x0b],
  drop: [0x1a],
  br: (depth: number): Bytes => [0x0c, ...uleb(depth)],
  brIf: (depth: number): Bytes => [0x0d, ...uleb(depth)],
  get: (local: number): Bytes => [0x20, ...uleb(local)],
  set: (local: number): Bytes => [0x21, ...uleb(local)],
  tee: (local: number): Bytes => [0x22, ...uleb(local)],
  i32: (value: number): Bytes => [0x41, ...sleb(value)],
  f32: (value: number): Bytes => [0x43, ...bytesOf(new Float32Array([value]))],
  f64: (value: number): Bytes => [0x44, ...bytesOf(new Float64Array([value]))],
  i32Add: [0x6a],
  i32Sub: [0x6b],
  i32Mul: [0x6c],
  i32Shl: [0x74],
  i32LtU: [0x49],
  i32GeU: [0x4f],
  i32Eqz: [0x45],
  i32Eq: [0x46],
  i32Load: (offset = 0): Bytes => mem([0x28], 2, offset),
  /** Memory access with alignment exponent `align` and constant byte offset. */
  f32Load: (offset = 0): Bytes => mem([0x2a], 2, offset),
  f32Store: (offset = 0): Bytes => mem([0x38], 2, offset),
  f64Store: (offset = 0): Bytes => mem([0x39], 3, offset),
  v128Load: (offset = 0): Bytes => mem(simd(0), 4, offset),
  v128Load32Splat: (offset = 0): Bytes => mem(simd(9), 2, offset),
  v128Load64Splat: (offset = 0): Bytes => mem(simd(10), 3, offset),
  v128Store: (offset = 0): Bytes => mem(simd(11), 4, offset),
  /** Replaces 16-bit lane `lane` of the vector on the stack with the value at the address under it. */
  v128Load16Lane: (lane: number, offset = 0): Bytes => [...mem(simd(0x55), 1, offset), lane],
  v128Const: (lanes: readonly [number, number, number, number]): Bytes => [
    ...simd(12),
    ...bytesOf(new Float32Array(lanes)),
  ],
  v128ConstI32: (lanes: readonly [number, number, number, number]): Bytes => [
    ...simd(12),
    ...bytesOf(new Int32Array(lanes)),
  ],
  v128ConstF64: (lanes: readonly [number, number]): Bytes => [
    ...simd(12),
    ...bytesOf(new Float64Array(lanes)),
  ],
  /** Bytes of the two vectors on the stack (0–15 the first, 16–31 the second) picked by `lanes`. */
  i8x16Shuffle: (lanes: readonly number[]): Bytes => [...simd(13), ...lanes],
  v128And: simd(0x4e),
  v128Or: simd(0x50),
  v128Xor: simd(0x51),
  /** (a & mask) | (b & ~mask) for a, b, mask on the stack. */
  v128Bitselect: simd(0x52),
  f32x4Splat: simd(19),
  f32x4Add: simd(228),
  f32x4Sub: simd(229),
  f32x4Mul: simd(230),
  f32x4Div: simd(231),
  f32x4Min: simd(232),
  f32x4Max: simd(233),
  f32x4Neg: simd(225),
  f32x4Nearest: simd(106),
  i32x4Add: simd(174),
  i32x4Sub: simd(177),
  i32x4Shl: simd(171),
  i32x4ShrS: simd(0xac),
  i32x4ShrU: simd(0xad),
  i32x4LtS: simd(0x39),
  i32x4GtS: simd(0x3b),
  i32x4TruncSatF32x4S: simd(248),
  i32x4ExtendLowI16x8S: simd(0xa7),
  i64x2ShrS: simd(0xcc),
  f64x2ExtractLane: (lane: number): Bytes => [...simd(0x21), lane],
  f64x2Lt: simd(0x49),
  f64x2Sqrt: simd(0xef),
  f64x2Add: simd(0xf0),
  f64x2Sub: simd(0xf1),
  f64x2Mul: simd(0xf2),
  f64x2Div: simd(0xf3),
  /** b < a ? b : a — the lane-wise `if (x < min) min = x` of plain code, whatever the zeros' signs. */
  f64x2Pmin: simd(0xf6),
  /** a < b ? b : a — the lane-wise `if (x > max) max = x`. */
  f64x2Pmax: simd(0xf7),
  f64x2ConvertLowI32x4S: simd(0xfe),
} as const;

export interface FunctionDef {
  readonly exportName: string;
  readonly params: number;
  readonly i32Locals: number;
  readonly v128Locals: number;
  readonly body: Bytes;
}

/**
 * A module importing its memory as env.memory and exporting functions that take only i32 parameters and return
 * nothing (pointers and sizes in, results written to memory).
 */
export function moduleBytes(functions: readonly FunctionDef[]): Uint8Array<ArrayBuffer> {
  const types = functions.map((f) => [0x60, ...vector(new Array(f.params).fill([I32])), 0]);
  const imports = [[...name('env'), ...name('memory'), 0x02, 0x00, ...uleb(1)]];
  const exports = functions.map((f, i) => [...name(f.exportName), 0x00, ...uleb(i)]);
  const codes = functions.map((f) => {
    const locals = vector([
      [...uleb(f.i32Locals), I32],
      [...uleb(f.v128Locals), V128],
    ]);
    const code = [...locals, ...f.body, ...op.end];
    return [...uleb(code.length), ...code];
  });
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vector(types)),
    ...section(2, vector(imports)),
    ...section(3, vector(functions.map((_, i) => uleb(i)))),
    ...section(7, vector(exports)),
    ...section(10, vector(codes)),
  ]);
}

/** Emits one function: parameters are i32 byte addresses or sizes; locals are handed out by name. */
export class FunctionBuilder {
  private readonly code: number[] = [];
  private readonly prologue: number[] = [];
  private readonly constants = new Map<string, number>();
  private nextI32: number;
  private nextV128: number;

  constructor(
    private readonly exportName: string,
    private readonly params: number,
    private readonly i32Locals = 16,
    private readonly v128Locals = 24,
  ) {
    this.nextI32 = params;
    this.nextV128 = params + i32Locals;
  }

  i32(): number {
    if (this.nextI32 >= this.params + this.i32Locals) throw new RangeError('out of i32 locals');
    return this.nextI32++;
  }

  v128(): number {
    if (this.nextV128 >= this.params + this.i32Locals + this.v128Locals)
      throw new RangeError('out of v128 locals');
    return this.nextV128++;
  }

  /**
   * `local.get` of a v128 local set once, at the function's start, to `value` (a v128.const): V8 rebuilds a
   * v128.const from immediates every time it runs, while a local is a register or one load. Memoised by value.
   */
  constant(value: Bytes): Bytes {
    const key = value.join(',');
    let local = this.constants.get(key);
    if (local === undefined) {
      local = this.v128();
      this.constants.set(key, local);
      this.prologue.push(...value, ...op.set(local));
    }
    return op.get(local);
  }

  emit(...parts: Bytes[]): this {
    for (const p of parts) for (const b of p) this.code.push(b);
    return this;
  }

  /** do { body } while ((counter += step) < limit), unsigned; the body runs at least once. */
  loop(counter: number, step: number, limit: Bytes, body: () => void): this {
    this.emit(op.loop);
    body();
    this.emit(
      op.get(counter),
      op.i32(step),
      op.i32Add,
      op.tee(counter),
      limit,
      op.i32LtU,
      op.brIf(0),
      op.end,
    );
    return this;
  }

  /** while (counter < limit) { body; counter += step }, unsigned; the body may run zero times. */
  whileLoop(counter: number, step: number, limit: Bytes, body: () => void): this {
    this.emit(op.block, op.loop, op.get(counter), limit, op.i32GeU, op.brIf(1));
    body();
    this.emit(op.get(counter), op.i32(step), op.i32Add, op.set(counter), op.br(0), op.end, op.end);
    return this;
  }

  build(): FunctionDef {
    return {
      exportName: this.exportName,
      params: this.params,
      i32Locals: this.i32Locals,
      v128Locals: this.v128Locals,
      body: [...this.prologue, ...this.code],
    };
  }
}

/**
 * f64x2 expressions written as nested calls, operands emitted left to right: `f64x2.sub(a, b)` is a − b lane-wise.
 * Generated code then reads like the scalar formula it mirrors, one IEEE operation per call.
 */
export const f64x2 = {
  get: (local: number): Bytes => op.get(local),
  splat: (value: number): Bytes => op.v128ConstF64([value, value]),
  add: (a: Bytes, b: Bytes): Bytes => [...a, ...b, ...op.f64x2Add],
  sub: (a: Bytes, b: Bytes): Bytes => [...a, ...b, ...op.f64x2Sub],
  mul: (a: Bytes, b: Bytes): Bytes => [...a, ...b, ...op.f64x2Mul],
  div: (a: Bytes, b: Bytes): Bytes => [...a, ...b, ...op.f64x2Div],
  /** mask ? a : b, bit by bit. */
  select: (a: Bytes, b: Bytes, mask: Bytes): Bytes => [...a, ...b, ...mask, ...op.v128Bitselect],
};
