import FFT from 'fft.js';
import {
  type Bytes,
  FunctionBuilder,
  type FunctionDef,
  f64x2,
  moduleBytes,
  op,
} from '../core/wasm-encoding.js';
import type { AudioWindowAnalyser } from './audio-analyser.js';
import type { FrameRows } from './audio-descriptors.js';
import type { AudioFeatureConfig } from './config.js';
import type { FrameStatistics } from './frame-aggregates.js';
import { frameCount, PCM16_SCALE, periodicHann } from './log-mel.js';
import { flatMelFilterbank } from './mel.js';
import { splitTwiddles } from './real-fft.js';
import { emitLogF64x2 } from './simd-log.js';

/**
 * The whole per-window audio path as one WebAssembly SIMD kernel, generated at load time for the config (see
 * docs/features.md): PCM16 → scaled samples → periodic Hann → 512-point real FFT → power → sparse mel → log, plus
 * RMS, then the frame statistics, with no allocation at all once the memory has grown to the longest window.
 *
 * Why: the JavaScript path (LogMelExtractor) spends ~6 µs a frame, mostly in fft.js, the real-input split and the
 * mel sums; numpy's vectorised log-mel does ~3 µs on the same machine.
 *
 * Vectorisation: the two f64 lanes hold two frames (f, f + 1), so every stage is the scalar algorithm with each
 * operation done on both frames at once, and no shuffles. Exactness: each stage performs the same IEEE double
 * operations in the same order as the JavaScript path — fft.js's radix-4 transform with fft.js's own twiddle table
 * and bit-reversal, the same split, the mel sums in the same order, fdlibm's log (simd-log.ts), no FMA — so both
 * paths produce the same bits (tested), not merely close numbers.
 */
export class SimdLogMelAnalyser implements AudioWindowAnalyser {
  readonly kernel = 'wasm-simd';
  readonly #config: AudioFeatureConfig;
  readonly #layout: KernelLayout;
  readonly #memory: WebAssembly.Memory;
  readonly #analyse: (pcm: number, rows: number, frames: number) => void;
  readonly #accumulate: (rows: number, frames: number) => void;
  #pcm: Int16Array;
  #stats: MutableStatistics;
  /** Address of the last analysed window's rows in the memory. */
  #rowsAt = 0;

  constructor(config: AudioFeatureConfig) {
    this.#config = config;
    const layout = kernelLayout(config);
    this.#layout = layout;
    this.#memory = new WebAssembly.Memory({ initial: Math.ceil((layout.dynamic + 2 * 16_000 * 2) / PAGE) });
    const { exports } = new WebAssembly.Instance(kernelModule(config, layout), {
      env: { memory: this.#memory },
    });
    this.#analyse = exports['analyse'] as (pcm: number, rows: number, frames: number) => void;
    this.#accumulate = exports['accumulate'] as (rows: number, frames: number) => void;
    writeTables(this.#memory.buffer, config, layout);
    this.#pcm = this.#pcmView();
    this.#stats = this.#statsViews();
  }

  reserve(samples: number): Int16Array {
    this.#ensure(this.#layout.dynamic + 2 * samples);
    return this.#pcm;
  }

  analyse(length: number): FrameStatistics {
    const rows = this.#run(length);
    this.#accumulate(rows, this.#stats.count);
    return this.#stats;
  }

  lastRows(): FrameRows {
    const { stride } = this.#layout;
    const frames = this.#stats.count;
    const rows = new Float64Array(this.#memory.buffer, this.#rowsAt, frames * stride);
    return { rows, stride, frames, bands: this.#config.melBands };
  }

  frameRows(length: number): Float64Array {
    const rows = this.#run(length);
    const { dims, stride } = this.#layout;
    const frames = frameCount(length, this.#config);
    const all = new Float64Array(this.#memory.buffer, rows, frames * stride);
    const out = new Float64Array(frames * dims);
    for (let f = 0; f < frames; f++) out.set(all.subarray(f * stride, f * stride + dims), f * dims);
    return out;
  }

  /** Runs the frames of pcm[0, length) into the rows matrix; returns its address. */
  #run(length: number): number {
    const { frameLength } = this.#config;
    const frames = frameCount(length, this.#config);
    if (frames === 0) throw new RangeError('log-mel analysis needs at least one sample');
    // A block shorter than a frame is zero-padded to one frame; the kernel reads whole frames.
    const padded = Math.max(length, frameLength);
    const pcm = this.#layout.dynamic;
    // Rows for an even number of frames: the second lane of the last pair writes a row nobody reads.
    const rows = align(pcm + 2 * padded, 16);
    this.#ensure(rows + (frames + 1) * this.#layout.stride * 8);
    if (length < frameLength) this.#pcm.fill(0, length, frameLength);
    this.#stats.count = frames;
    this.#analyse(pcm, rows, frames);
    this.#rowsAt = rows;
    return rows;
  }

  /** Grows the memory to at least `bytes` (doubling, so rare); views are remade as growing detaches them. */
  #ensure(bytes: number): void {
    const have = this.#memory.buffer.byteLength;
    if (bytes <= have) return;
    this.#memory.grow(Math.ceil((Math.max(bytes, 2 * have) - have) / PAGE));
    this.#pcm = this.#pcmView();
    this.#stats = this.#statsViews(this.#stats.count);
  }

  #pcmView(): Int16Array {
    const { buffer } = this.#memory;
    return new Int16Array(buffer, this.#layout.dynamic, (buffer.byteLength - this.#layout.dynamic) / 2);
  }

  #statsViews(count = 0): MutableStatistics {
    const { buffer } = this.#memory;
    const { stats, stride } = this.#layout;
    const view = (i: number) => new Float64Array(buffer, stats + i * stride * 8, stride);
    return { count, shift: view(0), sum: view(1), sumSquares: view(2), max: view(3), min: view(4) };
  }
}

interface MutableStatistics extends FrameStatistics {
  count: number;
}

const PAGE = 65_536;
const align = (n: number, to: number): number => Math.ceil(n / to) * to;

/**
 * fft.js's plan for its complex transform of n = fftSize/2 points, which the kernel follows exactly: a first pass of
 * radix-2 or radix-4 butterflies reading the input in bit-reversed order, then radix-4 passes in place.
 * Indices count doubles of the interleaved complex array, as in fft.js.
 */
interface FftPlan {
  readonly n: number;
  /** First pass: butterflies reading at bitrev[t] with stride `step`, writing `len` doubles at t·len. */
  readonly first: {
    readonly radix: 2 | 4;
    readonly step: number;
    readonly len: number;
    readonly bitrev: number[];
  };
  /** Later passes: blocks of `len` doubles, butterflies `quarter` doubles apart, twiddle index stepping by `step`. */
  readonly passes: readonly { readonly step: number; readonly len: number; readonly quarter: number }[];
  /** fft.js's twiddle table: cos(πi/n), −sin(πi/n) interleaved. */
  readonly table: readonly number[];
}

function fftPlan(n: number): FftPlan {
  const fft = new FFT(n);
  const size = 2 * n;
  let power = 0;
  while (1 << power < n) power++;
  const width = power % 2 === 0 ? power - 1 : power;
  let step = 1 << width;
  const len = (size / step) << 1;
  const bitrev: number[] = [];
  for (let j = 0; j < size / len; j++) {
    let r = 0;
    for (let shift = 0; shift < width; shift += 2) r |= ((j >>> shift) & 3) << (width - shift - 2);
    bitrev.push(r);
  }
  const passes: { step: number; len: number; quarter: number }[] = [];
  for (step >>= 2; step >= 2; step >>= 2) {
    const passLen = (size / step) << 1;
    passes.push({ step, len: passLen, quarter: passLen >>> 2 });
  }
  return { n, first: { radix: len === 4 ? 2 : 4, step: 1 << width, len, bitrev }, passes, table: fft.table };
}

/** Byte addresses of the kernel's tables and buffers; every f64x2 slot is 16 bytes (two frames' values). */
interface KernelLayout {
  readonly plan: FftPlan;
  /** Values per frame row: the mel bands then the RMS; `stride` rounds it up to whole f64x2 vectors. */
  readonly dims: number;
  readonly stride: number;
  readonly window: number;
  readonly bitrev: number;
  /** Per later pass: its butterflies' six twiddles (B, C, D re and im), each in both lanes: 96 bytes a butterfly. */
  readonly twiddles: readonly number[];
  readonly split: number;
  /** Per band: power address of its first bin, address of its first weight, address past its last. */
  readonly bands: number;
  readonly weights: number;
  readonly weightCount: number;
  /** The windowed frame pair, zero-padded to fftSize: double i of the transform's input at 16·i. */
  readonly input: number;
  readonly spectrum: number;
  readonly power: number;
  /** Each band's mel power + logEps, before the log. */
  readonly mel: number;
  /** shift, sum, sumSquares, max, min: `stride` doubles each. */
  readonly stats: number;
  /** Start of the growing part: the window's PCM16, then the frame rows. */
  readonly dynamic: number;
}

function kernelLayout(config: AudioFeatureConfig): KernelLayout {
  const { fftSize, frameLength, melBands } = config;
  const plan = fftPlan(fftSize / 2);
  const dims = melBands + 1;
  const stride = align(dims, 2);
  let next = 0;
  const take = (bytes: number): number => {
    const at = next;
    next = align(next + bytes, 64);
    return at;
  };
  const weightCount = flatMelFilterbank(config).weights.length;
  return {
    plan,
    dims,
    stride,
    window: take(8 * frameLength),
    bitrev: take(4 * plan.first.bitrev.length),
    twiddles: plan.passes.map((p) => take(96 * (p.quarter / 2))),
    split: take(8 * fftSize),
    bands: take(12 * melBands),
    weights: take(8 * weightCount),
    weightCount,
    input: take(16 * fftSize),
    spectrum: take(16 * fftSize),
    power: take(16 * (fftSize / 2 + 1)),
    mel: take(16 * melBands),
    stats: take(5 * 8 * stride),
    dynamic: next,
  };
}

function writeTables(buffer: ArrayBuffer, config: AudioFeatureConfig, layout: KernelLayout): void {
  const f64 = (at: number, length: number) => new Float64Array(buffer, at, length);
  const i32 = (at: number, length: number) => new Int32Array(buffer, at, length);
  const { plan, input } = layout;
  f64(layout.window, config.frameLength).set(periodicHann(config.frameLength));
  i32(layout.bitrev, plan.first.bitrev.length).set(plan.first.bitrev.map((off) => input + 16 * off));
  plan.passes.forEach((pass, p) => {
    const twiddles = f64(layout.twiddles[p] as number, 12 * (pass.quarter / 2));
    for (let j = 0, k = 0; j < pass.quarter / 2; j++, k += pass.step)
      for (let m = 1; m <= 3; m++) {
        twiddles.fill(plan.table[m * k] as number, 12 * j + 4 * (m - 1), 12 * j + 4 * (m - 1) + 2);
        twiddles.fill(plan.table[m * k + 1] as number, 12 * j + 4 * (m - 1) + 2, 12 * j + 4 * (m - 1) + 4);
      }
  });
  const half = config.fftSize / 2;
  const { cos, sin } = splitTwiddles(config.fftSize);
  f64(layout.split, half).set(cos);
  f64(layout.split + 8 * half, half).set(sin);
  const bank = flatMelFilterbank(config);
  const bands = i32(layout.bands, 3 * config.melBands);
  for (let m = 0; m < config.melBands; m++) {
    bands[3 * m] = layout.power + 16 * (bank.firstBin[m] as number);
    bands[3 * m + 1] = layout.weights + 8 * (bank.weightStart[m] as number);
    bands[3 * m + 2] = layout.weights + 8 * (bank.weightStart[m + 1] as number);
  }
  f64(layout.weights, layout.weightCount).set(bank.weights);
}

/** Compiled once per distinct config: pipelines and tests make many analysers of the same few configs. */
const compiled = new Map<string, WebAssembly.Module>();

function kernelModule(config: AudioFeatureConfig, layout: KernelLayout): WebAssembly.Module {
  const key = JSON.stringify(config);
  let module = compiled.get(key);
  if (module === undefined) {
    module = new WebAssembly.Module(
      moduleBytes([analyseFunction(config, layout), accumulateFunction(layout)]),
    );
    compiled.set(key, module);
  }
  return module;
}

const { get, add, sub, mul } = f64x2;
const load = (base: number, offset = 0): Bytes => [...op.get(base), ...op.v128Load(offset)];
const loadSplat = (base: number, offset = 0): Bytes => [...op.get(base), ...op.v128Load64Splat(offset)];
const store = (base: number, offset: number, value: Bytes): Bytes => [
  ...op.get(base),
  ...value,
  ...op.v128Store(offset),
];

/**
 * analyse(pcm, rows, frames): for the frame pairs (0, 1), (2, 3)... writes each frame's row — log-mel bands, RMS,
 * zero padding to the stride — at rows + f·stride·8. When frames is odd the last pair's second lane repeats the last
 * frame and writes the extra row after it, which nobody reads. Comments quote the JavaScript each stage mirrors.
 */
function analyseFunction(config: AudioFeatureConfig, L: KernelLayout): FunctionDef {
  const { frameLength, hopLength, fftSize, melBands, logEps } = config;
  const { plan, stride, dims } = L;
  const [PCM, ROWS, FRAMES] = [0, 1, 2];
  const f = new FunctionBuilder('analyse', 3, 24, 112);
  const splat = (v: number): Bytes => f.constant(f64x2.splat(v));
  // i32 locals: loop counters and byte addresses.
  const [frame, p0, p1, row] = [f.i32(), f.i32(), f.i32(), f.i32()]; // frame pair, its PCM, its rows
  const [i, t, ptr, out] = [f.i32(), f.i32(), f.i32(), f.i32()];
  const [block, a, aEnd, tw] = [f.i32(), f.i32(), f.i32(), f.i32()]; // FFT pass: block, butterfly, twiddles
  const [band, w, wEnd, bin, column] = [f.i32(), f.i32(), f.i32(), f.i32(), f.i32()];
  // f64x2 locals, named after the JavaScript variables they mirror.
  const [sumSquares, x, re, im] = [f.v128(), f.v128(), f.v128(), f.v128()];
  const [ar, ai, br, bi] = [f.v128(), f.v128(), f.v128(), f.v128()];
  const [cr, ci, dr, di] = [f.v128(), f.v128(), f.v128(), f.v128()];
  const [t0r, t0i, t1r, t1i] = [f.v128(), f.v128(), f.v128(), f.v128()];
  const [t2r, t2i, t3r, t3i] = [f.v128(), f.v128(), f.v128(), f.v128()];
  const [mbr, mbi, mcr, mci, mdr, mdi] = [f.v128(), f.v128(), f.v128(), f.v128(), f.v128(), f.v128()];
  const set = (local: number, value: Bytes): Bytes => [...value, ...op.set(local)];
  /**
   * Lane 0 to this frame's row, lane 1 to the next frame's, at column `at` (a constant, or the `column` local,
   * in bytes) plus `extra` bytes.
   */
  const storeLanes = (value: number, at: number | 'column', extra = 0): Bytes[] => {
    const address = at === 'column' ? [...op.get(row), ...op.get(column), ...op.i32Add] : op.get(row);
    const offset = (at === 'column' ? 0 : 8 * at) + extra;
    return [
      [...address, ...get(value), ...op.f64x2ExtractLane(0), ...op.f64Store(offset)],
      [...address, ...get(value), ...op.f64x2ExtractLane(1), ...op.f64Store(offset + 8 * stride)],
    ];
  };

  f.emit(op.i32(0), op.set(frame));
  f.loop(frame, 2, op.get(FRAMES), () => {
    // Frame f starts at pcm + 2·f·hop; frame f + 1 one hop later, or frame f again when f is the last.
    f.emit(op.get(PCM), op.get(frame), op.i32(2 * hopLength), op.i32Mul, op.i32Add, op.set(p0));
    f.emit(op.get(p0), op.i32(2 * hopLength), op.i32Add, op.set(p1));
    f.emit(
      op.get(frame),
      op.i32(1),
      op.i32Add,
      op.get(FRAMES),
      op.i32GeU,
      op.if,
      op.get(p0),
      op.set(p1),
      op.end,
    );
    f.emit(op.get(ROWS), op.get(frame), op.i32(8 * stride), op.i32Mul, op.i32Add, op.set(row));

    // x = pcm[i] * PCM16_SCALE; sumSquares += x * x; frame[i] = x * window[i]   (i counts PCM bytes here)
    f.emit(splat(0), op.set(sumSquares), op.i32(0), op.set(i));
    f.loop(i, 2, op.i32(2 * frameLength), () => {
      f.emit(op.get(p1), op.get(i), op.i32Add, op.get(p0), op.get(i), op.i32Add, splat(0));
      f.emit(op.v128Load16Lane(0), op.v128Load16Lane(1), op.i32x4ExtendLowI16x8S, op.f64x2ConvertLowI32x4S);
      f.emit(splat(PCM16_SCALE), op.f64x2Mul, op.set(x));
      f.emit(set(sumSquares, add(get(sumSquares), mul(get(x), get(x)))));
      f.emit(op.get(i), op.i32(3), op.i32Shl); // input + 16·sample
      f.emit(mul(get(x), [...op.get(i), ...op.i32(2), ...op.i32Shl, ...op.v128Load64Splat(L.window)]));
      f.emit(op.v128Store(L.input));
    });
    // Math.sqrt(sumSquares / frameLength)
    f.emit(
      get(sumSquares),
      splat(frameLength),
      op.f64x2Div,
      op.f64x2Sqrt,
      op.set(x),
      ...storeLanes(x, melBands),
    );
    for (let c = dims; c < stride; c++)
      f.emit(
        op.get(row),
        op.f64(0),
        op.f64Store(8 * c),
        op.get(row),
        op.f64(0),
        op.f64Store(8 * (stride + c)),
      );

    // fft.js transform, first pass: _singleTransform4 (or 2) reading data at bitrev[t], writing len doubles at t·len.
    const { first } = plan;
    const s16 = 16 * first.step;
    f.emit(op.i32(0), op.set(t), op.i32(L.spectrum), op.set(out));
    f.loop(t, 4, op.i32(4 * first.bitrev.length), () => {
      f.emit(op.get(t), op.i32Load(L.bitrev), op.set(ptr));
      if (first.radix === 4) {
        f.emit(
          set(ar, load(ptr)),
          set(ai, load(ptr, 16)),
          set(br, load(ptr, s16)),
          set(bi, load(ptr, s16 + 16)),
        );
        f.emit(set(cr, load(ptr, 2 * s16)), set(ci, load(ptr, 2 * s16 + 16)));
        f.emit(set(dr, load(ptr, 3 * s16)), set(di, load(ptr, 3 * s16 + 16)));
        f.emit(set(t0r, add(get(ar), get(cr))), set(t0i, add(get(ai), get(ci))));
        f.emit(set(t1r, sub(get(ar), get(cr))), set(t1i, sub(get(ai), get(ci))));
        f.emit(set(t2r, add(get(br), get(dr))), set(t2i, add(get(bi), get(di))));
        f.emit(set(t3r, sub(get(br), get(dr))), set(t3i, sub(get(bi), get(di))));
        f.emit(store(out, 0, add(get(t0r), get(t2r))), store(out, 16, add(get(t0i), get(t2i))));
        f.emit(store(out, 32, add(get(t1r), get(t3i))), store(out, 48, sub(get(t1i), get(t3r))));
        f.emit(store(out, 64, sub(get(t0r), get(t2r))), store(out, 80, sub(get(t0i), get(t2i))));
        f.emit(store(out, 96, sub(get(t1r), get(t3i))), store(out, 112, add(get(t1i), get(t3r))));
      } else {
        f.emit(
          set(ar, load(ptr)),
          set(ai, load(ptr, 16)),
          set(br, load(ptr, s16)),
          set(bi, load(ptr, s16 + 16)),
        );
        f.emit(store(out, 0, add(get(ar), get(br))), store(out, 16, add(get(ai), get(bi))));
        f.emit(store(out, 32, sub(get(ar), get(br))), store(out, 48, sub(get(ai), get(bi))));
      }
      f.emit(op.get(out), op.i32(16 * first.len), op.i32Add, op.set(out));
    });

    // Later passes, in place: for each block of len doubles, butterflies A, B = A + quarter, C, D with
    // MB = B·table[k], MC = C·table[2k], MD = D·table[3k] (k += step), T0..T3 and the final values as in fft.js.
    plan.passes.forEach((pass, p) => {
      const q = 16 * pass.quarter;
      const twiddles = L.twiddles[p] as number;
      f.emit(op.i32(L.spectrum), op.set(block));
      f.loop(block, 16 * pass.len, op.i32(L.spectrum + 16 * fftSize), () => {
        f.emit(op.i32(twiddles), op.set(tw), op.get(block), op.set(a));
        f.emit(op.get(block), op.i32(q), op.i32Add, op.set(aEnd));
        f.loop(a, 32, op.get(aEnd), () => {
          // MBr = Br * tableBr - Bi * tableBi; MBi = Br * tableBi + Bi * tableBr (likewise C, D), one input at a
          // time so that few values are live at once (x64 has 16 vector registers).
          for (const [mr, mi, xr, xi, quarter] of [
            [mbr, mbi, br, bi, 1],
            [mcr, mci, cr, ci, 2],
            [mdr, mdi, dr, di, 3],
          ] as const) {
            const [tableR, tableI] = [load(tw, 32 * (quarter - 1)), load(tw, 32 * (quarter - 1) + 16)];
            f.emit(set(xr, load(a, quarter * q)), set(xi, load(a, quarter * q + 16)));
            f.emit(set(mr, sub(mul(get(xr), tableR), mul(get(xi), tableI))));
            f.emit(set(mi, add(mul(get(xr), tableI), mul(get(xi), tableR))));
          }
          f.emit(set(ar, load(a)), set(ai, load(a, 16)));
          f.emit(set(t0r, add(get(ar), get(mcr))), set(t0i, add(get(ai), get(mci))));
          f.emit(set(t1r, sub(get(ar), get(mcr))), set(t1i, sub(get(ai), get(mci))));
          f.emit(set(t2r, add(get(mbr), get(mdr))), set(t2i, add(get(mbi), get(mdi))));
          f.emit(set(t3r, sub(get(mbr), get(mdr))), set(t3i, sub(get(mbi), get(mdi))));
          f.emit(store(a, 0, add(get(t0r), get(t2r))), store(a, 16, add(get(t0i), get(t2i))));
          f.emit(store(a, q, add(get(t1r), get(t3i))), store(a, q + 16, sub(get(t1i), get(t3r))));
          f.emit(store(a, 2 * q, sub(get(t0r), get(t2r))), store(a, 2 * q + 16, sub(get(t0i), get(t2i))));
          f.emit(store(a, 3 * q, sub(get(t1r), get(t3i))), store(a, 3 * q + 16, add(get(t1i), get(t3r))));
          f.emit(op.get(tw), op.i32(96), op.i32Add, op.set(tw));
        });
      });
    });

    // RealPowerSpectrum.compute: power[0] = (z0 + z1)², power[half] = (z0 − z1)², then the split for k = 1..half−1.
    const half = fftSize / 2;
    f.emit(
      op.i32(0),
      op.v128Load(L.spectrum),
      op.set(ar),
      op.i32(0),
      op.v128Load(L.spectrum + 16),
      op.set(ai),
    );
    f.emit(set(x, add(get(ar), get(ai))), op.i32(0), mul(get(x), get(x)), op.v128Store(L.power));
    f.emit(set(x, sub(get(ar), get(ai))), op.i32(0), mul(get(x), get(x)), op.v128Store(L.power + 16 * half));
    // i = 8k: z[2k] at spectrum + 4i, z[2(half − k)] at spectrum + 32·half − 4i, cos[k] at split + i.
    f.emit(op.i32(8), op.set(i));
    f.loop(i, 8, op.i32(8 * half), () => {
      f.emit(
        op.get(i),
        op.i32(2),
        op.i32Shl,
        op.set(a),
        op.i32(32 * half),
        op.get(a),
        op.i32Sub,
        op.set(ptr),
      );
      f.emit(set(ar, load(a, L.spectrum)), set(ai, load(a, L.spectrum + 16)));
      f.emit(set(br, load(ptr, L.spectrum)), set(bi, load(ptr, L.spectrum + 16)));
      f.emit(set(cr, loadSplat(i, L.split)), set(ci, loadSplat(i, L.split + 8 * half))); // c, s
      // evenRe = 0.5 * (aRe + bRe); evenIm = 0.5 * (aIm - bIm); oddRe = 0.5 * (aIm + bIm); oddIm = -0.5 * (aRe - bRe)
      f.emit(
        set(t0r, mul(splat(0.5), add(get(ar), get(br)))),
        set(t0i, mul(splat(0.5), sub(get(ai), get(bi)))),
      );
      f.emit(
        set(t1r, mul(splat(0.5), add(get(ai), get(bi)))),
        set(t1i, mul(splat(-0.5), sub(get(ar), get(br)))),
      );
      // re = evenRe + c * oddRe + s * oddIm; im = evenIm + c * oddIm - s * oddRe; power[k] = re * re + im * im
      f.emit(set(re, add(add(get(t0r), mul(get(cr), get(t1r))), mul(get(ci), get(t1i)))));
      f.emit(set(im, sub(add(get(t0i), mul(get(cr), get(t1i))), mul(get(ci), get(t1r)))));
      f.emit(op.get(i), op.i32(1), op.i32Shl, add(mul(get(re), get(re)), mul(get(im), get(im))));
      f.emit(op.v128Store(L.power));
    });

    // Per band: sum += weights[j] * power[bin + j] from 0 in bin order, then sum + logEps.
    f.emit(op.i32(0), op.set(band), op.i32(L.mel), op.set(column));
    f.loop(band, 12, op.i32(12 * melBands), () => {
      f.emit(
        op.get(band),
        op.i32Load(L.bands),
        op.set(bin),
        op.get(band),
        op.i32Load(L.bands + 4),
        op.set(w),
      );
      f.emit(op.get(band), op.i32Load(L.bands + 8), op.set(wEnd), splat(0), op.set(x));
      f.whileLoop(w, 8, op.get(wEnd), () => {
        f.emit(set(x, add(get(x), mul(loadSplat(w), load(bin)))));
        f.emit(op.get(bin), op.i32(16), op.i32Add, op.set(bin));
      });
      f.emit(store(column, 0, add(get(x), splat(logEps))));
      f.emit(op.get(column), op.i32(16), op.i32Add, op.set(column));
    });
    // logMel[m] = Math.log(...), two bands an iteration: two independent dependency chains to overlap.
    const pairs = Math.floor(melBands / 2);
    if (pairs > 0) {
      f.emit(op.i32(0), op.set(column));
      f.loop(column, 16, op.i32(16 * pairs), () => {
        f.emit(op.get(column), op.i32(1), op.i32Shl, op.set(ptr));
        f.emit(set(x, load(ptr, L.mel)), set(re, load(ptr, L.mel + 16)));
        emitLogF64x2(f, x);
        emitLogF64x2(f, re);
        f.emit(...storeLanes(x, 'column'), ...storeLanes(re, 'column', 8));
      });
    }
    if (melBands % 2 === 1) {
      f.emit(op.i32(0), op.v128Load(L.mel + 16 * (melBands - 1)), op.set(x));
      emitLogF64x2(f, x);
      f.emit(...storeLanes(x, melBands - 1));
    }
  });
  return f.build();
}

/**
 * accumulate(rows, frames): FrameAccumulator.add over the rows, in frame order, every dimension at once (two per
 * vector): shift = the first row; y = x − shift; sum += y; sumSquares += y·y; max and min as `if (x > max)`.
 */
function accumulateFunction(L: KernelLayout): FunctionDef {
  const [ROWS, FRAMES] = [0, 1];
  const f = new FunctionBuilder('accumulate', 2, 4, 8);
  const splat = (v: number): Bytes => f.constant(f64x2.splat(v));
  const [d, r, end] = [f.i32(), f.i32(), f.i32()];
  const [x, y] = [f.v128(), f.v128()];
  const bytes = 8 * L.stride;
  const [shift, sum, sumSquares, max, min] = [0, 1, 2, 3, 4].map((s) => L.stats + s * bytes) as [
    number,
    number,
    number,
    number,
    number,
  ];
  f.emit(op.i32(0), op.set(d));
  f.loop(d, 16, op.i32(bytes), () => {
    f.emit(store(d, shift, [...op.get(ROWS), ...op.get(d), ...op.i32Add, ...op.v128Load(0)]));
    f.emit(store(d, sum, splat(0)), store(d, sumSquares, splat(0)));
    f.emit(store(d, max, splat(Number.NEGATIVE_INFINITY)), store(d, min, splat(Number.POSITIVE_INFINITY)));
  });
  f.emit(
    op.get(ROWS),
    op.set(r),
    op.get(ROWS),
    op.get(FRAMES),
    op.i32(bytes),
    op.i32Mul,
    op.i32Add,
    op.set(end),
  );
  f.loop(r, bytes, op.get(end), () => {
    f.emit(op.i32(0), op.set(d));
    f.loop(d, 16, op.i32(bytes), () => {
      f.emit(op.get(r), op.get(d), op.i32Add, op.v128Load(0), op.set(x));
      f.emit(set(y, sub(get(x), load(d, shift))));
      f.emit(store(d, sum, add(load(d, sum), get(y))));
      f.emit(store(d, sumSquares, add(load(d, sumSquares), mul(get(y), get(y)))));
      f.emit(store(d, max, [...load(d, max), ...get(x), ...op.f64x2Pmax]));
      f.emit(store(d, min, [...load(d, min), ...get(x), ...op.f64x2Pmin]));
    });
  });
  return f.build();

  function set(local: number, value: Bytes): Bytes {
    return [...value, ...op.set(local)];
  }
}
