/**
 * The few pieces of the WebAssembly binary format (spec §5) that the fused CPU kernel's module needs: LEB128
 * numbers, sections, and the opcodes it uses, including 128-bit SIMD (prefix 0xfd). Enough to write one small
 * module by hand, which keeps a compiler toolchain (and a committed binary) out of the build.
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

/** Instruction encoders; each returns the bytes of one instruction. */
export const op = {
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  if: [0x04, 0x40],
  end: [0x0b],
  br: (depth: number): Bytes => [0x0c, ...uleb(depth)],
  brIf: (depth: number): Bytes => [0x0d, ...uleb(depth)],
  get: (local: number): Bytes => [0x20, ...uleb(local)],
  set: (local: number): Bytes => [0x21, ...uleb(local)],
  tee: (local: number): Bytes => [0x22, ...uleb(local)],
  i32: (value: number): Bytes => [0x41, ...sleb(value)],
  f32: (value: number): Bytes => {
    const b = new Uint8Array(new Float32Array([value]).buffer);
    return [0x43, ...b];
  },
  i32Add: [0x6a],
  i32Sub: [0x6b],
  i32Mul: [0x6c],
  i32LtU: [0x49],
  i32Eq: [0x46],
  i32Eqz: [0x45],
  /** Memory access with alignment exponent `align` and constant byte offset. */
  f32Load: (offset = 0): Bytes => [0x2a, 2, ...uleb(offset)],
  f32Store: (offset = 0): Bytes => [0x38, 2, ...uleb(offset)],
  v128Load: (offset = 0): Bytes => [0xfd, ...uleb(0), 4, ...uleb(offset)],
  v128Load32Splat: (offset = 0): Bytes => [0xfd, ...uleb(9), 2, ...uleb(offset)],
  v128Store: (offset = 0): Bytes => [0xfd, ...uleb(11), 4, ...uleb(offset)],
  v128Const: (lanes: readonly [number, number, number, number]): Bytes => [
    0xfd,
    ...uleb(12),
    ...new Uint8Array(new Float32Array(lanes).buffer),
  ],
  v128ConstI32: (lanes: readonly [number, number, number, number]): Bytes => [
    0xfd,
    ...uleb(12),
    ...new Uint8Array(new Int32Array(lanes).buffer),
  ],
  f32x4Splat: [0xfd, ...uleb(19)],
  f32x4Add: [0xfd, ...uleb(228)],
  f32x4Sub: [0xfd, ...uleb(229)],
  f32x4Mul: [0xfd, ...uleb(230)],
  f32x4Div: [0xfd, ...uleb(231)],
  f32x4Min: [0xfd, ...uleb(232)],
  f32x4Max: [0xfd, ...uleb(233)],
  f32x4Neg: [0xfd, ...uleb(225)],
  f32x4Nearest: [0xfd, ...uleb(106)],
  i32x4Add: [0xfd, ...uleb(174)],
  i32x4Shl: [0xfd, ...uleb(171)],
  i32x4TruncSatF32x4S: [0xfd, ...uleb(248)],
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
