import { f64x2, moduleBytes, op } from '../core/wasm-encoding.js';
import type { FrameRows } from './audio-descriptors.js';
import type { AudioFeatureConfig } from './config.js';
import { FrameAccumulator, type FrameStatistics } from './frame-aggregates.js';
import { frameCount, LogMelExtractor, type LogMelSink, PCM16_SCALE } from './log-mel.js';
import { SimdLogMelAnalyser } from './log-mel-simd.js';

/**
 * Which code computes a window's frames: `wasm-simd` (log-mel-simd.ts, the default wherever WebAssembly SIMD
 * runs) or `js` (LogMelExtractor with fft.js). They perform the same floating-point operations in the same order and
 * give the same bits; `js` is the fallback and the reference the kernel is tested against.
 */
export type AudioKernel = 'wasm-simd' | 'js';
export const AUDIO_KERNELS: readonly AudioKernel[] = ['wasm-simd', 'js'];

/**
 * Turns one window's PCM16 samples into per-frame log-mel bands and RMS and folds them into frame statistics:
 * dimensions 0..melBands − 1 are the bands, dimension melBands the RMS. Buffers are reused from window to window.
 */
export interface AudioWindowAnalyser {
  readonly kernel: AudioKernel;
  /**
   * The PCM16 buffer with room for at least `samples` samples; the window's samples go at index 0 on. What was
   * written before stays. The view is valid until the next call.
   */
  reserve(samples: number): Int16Array;
  /** Statistics of every frame of the buffer's first `length` (≥ 1) samples; valid until the next call. */
  analyse(length: number): FrameStatistics;
  /** The rows of the frames the last `analyse` saw (bands, then RMS); valid until the next call. */
  lastRows(): FrameRows;
  /** Every frame's row [bands..., RMS], frame-major (frames × (melBands + 1)): for tests and inspection. */
  frameRows(length: number): Float64Array;
}

/** Whether this runtime compiles WebAssembly SIMD, checked on a one-function module using f64x2 arithmetic. */
export const wasmSimdSupported: boolean = WebAssembly.validate(
  moduleBytes([
    {
      exportName: 'probe',
      params: 0,
      i32Locals: 0,
      v128Locals: 0,
      body: [...f64x2.add(f64x2.splat(1), f64x2.splat(2)), ...op.drop],
    },
  ]),
);

export function createAudioAnalyser(
  config: AudioFeatureConfig,
  kernel: AudioKernel = wasmSimdSupported ? 'wasm-simd' : 'js',
): AudioWindowAnalyser {
  if (kernel === 'wasm-simd') return new SimdLogMelAnalyser(config);
  return new JsLogMelAnalyser(config);
}

/** The JavaScript path: PCM16 scaled into doubles, then LogMelExtractor and a FrameAccumulator. */
export class JsLogMelAnalyser implements AudioWindowAnalyser {
  readonly kernel = 'js';
  readonly #config: AudioFeatureConfig;
  readonly #extractor: LogMelExtractor;
  readonly #accumulator: FrameAccumulator;
  readonly #row: Float64Array;
  readonly #sink: LogMelSink;
  /** Every frame's row of the last analyse, frame-major, grown as needed. */
  #rows = new Float64Array(0);
  #frames = 0;
  #pcm = new Int16Array(16_000);
  #samples = new Float64Array(16_000);

  constructor(config: AudioFeatureConfig) {
    this.#config = config;
    this.#extractor = new LogMelExtractor(config);
    this.#accumulator = new FrameAccumulator(config.melBands + 1);
    const row = new Float64Array(config.melBands + 1);
    this.#row = row;
    this.#sink = {
      frame: (logMel, rms) => {
        row.set(logMel);
        row[config.melBands] = rms;
        this.#accumulator.add(row);
        this.#rows.set(row, this.#frames++ * row.length);
      },
    };
  }

  reserve(samples: number): Int16Array {
    if (samples > this.#pcm.length) {
      const grown = new Int16Array(Math.max(samples, 2 * this.#pcm.length));
      grown.set(this.#pcm);
      this.#pcm = grown;
    }
    return this.#pcm;
  }

  analyse(length: number): FrameStatistics {
    if (length > this.#samples.length)
      this.#samples = new Float64Array(Math.max(length, 2 * this.#samples.length));
    const samples = this.#samples;
    const pcm = this.#pcm;
    for (let i = 0; i < length; i++) samples[i] = (pcm[i] as number) * PCM16_SCALE;
    const rows = frameCount(length, this.#config) * this.#row.length;
    if (rows > this.#rows.length) this.#rows = new Float64Array(Math.max(rows, 2 * this.#rows.length));
    this.#frames = 0;
    this.#accumulator.reset();
    this.#extractor.process(samples, length, this.#sink);
    return this.#accumulator;
  }

  lastRows(): FrameRows {
    const stride = this.#row.length;
    return { rows: this.#rows, stride, frames: this.#frames, bands: this.#config.melBands };
  }

  frameRows(length: number): Float64Array {
    this.analyse(length);
    return this.#rows.slice(0, this.#frames * this.#row.length);
  }
}
