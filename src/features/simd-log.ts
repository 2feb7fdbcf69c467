import { type Bytes, type FunctionBuilder, f64x2, op } from '../core/wasm-encoding.js';

/**
 * Natural log of both f64 lanes of a local, in place, as WebAssembly SIMD: fdlibm's __ieee754_log (the algorithm
 * V8's Math.log runs) step for step, its branches turned into lane selects. Every operation is the same IEEE one in
 * the same order, so each lane gets exactly Math.log's bits (test/unit/features-simd.test.ts checks this near
 * powers of two, on subnormals and on a million random values). Inputs must be positive and finite — mel power +
 * logEps always is — so fdlibm's zero, negative, infinity and NaN cases are left out.
 *
 * fdlibm: x = 2^k·(1 + f) with 1 + f in [√2/2, √2); log(1 + f) from s = f/(2 + f) and a polynomial R in s², or
 * from a short series when |f| < 2^-20; plus k·ln2 in two parts. Its k = 0 variants are the general formulas with
 * dk = 0 exactly (0 − (a − b) = b − a in IEEE arithmetic), so one formula serves both.
 *
 * The high 32-bit word of f64 lane n is i32 lane 2n + 1: the integer steps run on all four i32 lanes and only the
 * high-word lanes are used, as fdlibm uses only the high word.
 */
export function emitLogF64x2(f: FunctionBuilder, x: number): void {
  const small = f.v128();
  const k = f.v128();
  const hx = f.v128();
  const i = f.v128();
  const fr = f.v128();
  const dk = f.v128();
  const s = f.v128();
  const z = f.v128();
  const w = f.v128();
  const r = f.v128();
  const tiny = f.v128();
  const hfsqForm = f.v128();
  const tinyLog = f.v128();
  const { get, add, sub, mul, div, select } = f64x2;
  const splat = (v: number): Bytes => f.constant(f64x2.splat(v));
  const int = (v: number): Bytes => f.constant(op.v128ConstI32([v, v, v, v]));
  /** An i32 compare's result in lane 2n + 1 spread over all of f64 lane n. */
  const spreadHighWord: Bytes = [...op.i32(32), ...op.i64x2ShrS];
  const kLn2Hi = mul(get(dk), splat(LN2_HI));
  const kLn2Lo = mul(get(dk), splat(LN2_LO));

  // Subnormal x: scale by 2^54 and take 54 off k.
  f.emit(get(x), splat(2 ** -1022), op.f64x2Lt, op.set(small));
  f.emit(select(mul(get(x), splat(TWO54)), get(x), get(small)), op.set(x));
  // k = (hx >> 20) − 1023; hx &= 0x000fffff; i = (hx + 0x95f64) & 0x100000
  f.emit(get(x), op.i32(20), op.i32x4ShrS, int(1023), op.i32x4Sub);
  f.emit(get(small), int(-54), op.v128And, op.i32x4Add, op.set(k));
  f.emit(get(x), int(0x000fffff), op.v128And, op.set(hx));
  f.emit(get(hx), int(0x95f64), op.i32x4Add, int(0x100000), op.v128And, op.set(i));
  // high word of x = hx | (i ^ 0x3ff00000), normalising x or x/2; k += i >> 20; f = x − 1
  f.emit(
    get(hx),
    get(i),
    int(0x3ff00000),
    op.v128Xor,
    op.v128Or,
    get(x),
    f.constant(HIGH_WORDS),
    op.v128Bitselect,
  );
  f.emit(op.set(x), get(k), get(i), op.i32(20), op.i32x4ShrU, op.i32x4Add, op.set(k));
  f.emit(sub(get(x), splat(1)), op.set(fr));
  f.emit(get(k), get(k), op.i8x16Shuffle(HIGH_WORDS_TO_LOW), op.f64x2ConvertLowI32x4S, op.set(dk));

  // (0x000fffff & (2 + hx)) < 3, i.e. |f| < 2^-20: R = f·f·(0.5 − f/3) and
  // log = dk·ln2_hi − ((R − dk·ln2_lo) − f)
  f.emit(get(hx), int(2), op.i32x4Add, int(0x000fffff), op.v128And, int(3), op.i32x4LtS, spreadHighWord);
  f.emit(op.set(tiny));
  f.emit(mul(mul(get(fr), get(fr)), sub(splat(0.5), mul(splat(THIRD), get(fr)))), op.set(r));
  f.emit(sub(kLn2Hi, sub(sub(get(r), kLn2Lo), get(fr))), op.set(tinyLog));

  // Otherwise s = f/(2 + f), z = s², w = z², R = t2 + t1 with
  // t1 = w·(Lg2 + w·(Lg4 + w·Lg6)) and t2 = z·(Lg1 + w·(Lg3 + w·(Lg5 + w·Lg7)))
  f.emit(div(get(fr), add(splat(2), get(fr))), op.set(s));
  f.emit(mul(get(s), get(s)), op.set(z), mul(get(z), get(z)), op.set(w));
  const t1 = mul(get(w), add(splat(LG2), mul(get(w), add(splat(LG4), mul(get(w), splat(LG6))))));
  const t2 = mul(
    get(z),
    add(splat(LG1), mul(get(w), add(splat(LG3), mul(get(w), add(splat(LG5), mul(get(w), splat(LG7))))))),
  );
  f.emit(add(t2, t1), op.set(r));
  // ((hx − 0x6147a) | (0x6b851 − hx)) > 0 picks the form with hfsq = 0.5·f·f
  f.emit(get(hx), int(0x6147a), op.i32x4Sub, int(0x6b851), get(hx), op.i32x4Sub, op.v128Or);
  f.emit(int(0), op.i32x4GtS, spreadHighWord, op.set(hfsqForm));
  const hfsq = mul(mul(splat(0.5), get(fr)), get(fr));
  // dk·ln2_hi − ((hfsq − (s·(hfsq + R) + dk·ln2_lo)) − f)
  const withHfsq = sub(kLn2Hi, sub(sub(hfsq, add(mul(get(s), add(hfsq, get(r))), kLn2Lo)), get(fr)));
  // dk·ln2_hi − ((s·(f − R) − dk·ln2_lo) − f)
  const withoutHfsq = sub(kLn2Hi, sub(sub(mul(get(s), sub(get(fr), get(r))), kLn2Lo), get(fr)));
  f.emit(select(get(tinyLog), select(withHfsq, withoutHfsq, get(hfsqForm)), get(tiny)), op.set(x));
}

// fdlibm's constants, written as the shortest decimals of the same doubles (fdlibm's hex words in comments).
const TWO54 = 18014398509481984; // 43500000 00000000
const LN2_HI = 0.6931471803691238; // 3fe62e42 fee00000
const LN2_LO = 1.9082149292705877e-10; // 3dea39ef 35793c76
const LG1 = 0.6666666666666735; // 3fe55555 55555593
const LG2 = 0.3999999999940942; // 3fd99999 9997fa04
const LG3 = 0.2857142874366239; // 3fd24924 94229359
const LG4 = 0.22222198432149784; // 3fcc71c5 1d8e78af
const LG5 = 0.1818357216161805; // 3fc74664 96cb03de
const LG6 = 0.15313837699209373; // 3fc39a09 d078c69f
const LG7 = 0.14798198605116586; // 3fc2f112 df3e5244
/** fdlibm's 0.33333333333333333 (3fd55555 55555555). */
const THIRD = 0.3333333333333333;
/** All bits of the high 32-bit word of each f64 lane. */
const HIGH_WORDS = op.v128ConstI32([0, -1, 0, -1]);
/** Moves i32 lanes 1 and 3 (the high words) to lanes 0 and 1. */
const HIGH_WORDS_TO_LOW = [4, 5, 6, 7, 12, 13, 14, 15, 0, 1, 2, 3, 8, 9, 10, 11];
