import type { AudioFeatureConfig } from './config.js';
import { type FlatMelBank, flatMelFilterbank } from './mel.js';
import { RealPowerSpectrum } from './real-fft.js';

/** PCM16 to [-1, 1): a power of two, so the scaling is exact. */
export const PCM16_SCALE = 1 / 32768;

/** Receives each analysis frame's log-mel bands and RMS; the arrays are reused, so copy what must be kept. */
export interface LogMelSink {
  frame(logMel: Float64Array, rms: number): void;
}

/**
 * Log-mel filterbank and RMS energy over the frames of a block of samples. All buffers are allocated once, so the
 * per-frame loop allocates nothing. Frames start at 0, hop by hopLength and must fit entirely (no centring, no
 * padding) — except a block shorter than one frame, which is zero-padded to a single frame so that a window with a
 * little audio still has features.
 */
export class LogMelExtractor {
  readonly #config: AudioFeatureConfig;
  readonly #spectrum: RealPowerSpectrum;
  readonly #window: Float64Array;
  /** The windowed frame, zero-padded to fftSize. */
  readonly #frame: Float64Array;
  readonly #power: Float64Array;
  readonly #mel: FlatMelBank;
  readonly #logMel: Float64Array;

  constructor(config: AudioFeatureConfig) {
    this.#config = config;
    this.#spectrum = new RealPowerSpectrum(config.fftSize);
    this.#window = periodicHann(config.frameLength);
    this.#frame = new Float64Array(config.fftSize);
    this.#power = new Float64Array(config.fftSize / 2 + 1);
    this.#mel = flatMelFilterbank(config);
    this.#logMel = new Float64Array(config.melBands);
  }

  frameCount(sampleCount: number): number {
    return frameCount(sampleCount, this.#config);
  }

  /** Runs every frame of samples[0, length) (scaled to [-1, 1)) through the sink, in order. */
  process(samples: Float64Array, length: number, sink: LogMelSink): void {
    const frames = this.frameCount(length);
    for (let f = 0; f < frames; f++) {
      const rms = this.#analyseFrame(samples, f * this.#config.hopLength, length);
      sink.frame(this.#logMel, rms);
    }
  }

  #analyseFrame(samples: Float64Array, offset: number, length: number): number {
    const { frameLength, logEps } = this.#config;
    const frame = this.#frame;
    const window = this.#window;
    const available = Math.min(frameLength, length - offset);
    let sumSquares = 0;
    for (let i = 0; i < available; i++) {
      const x = samples[offset + i] as number;
      sumSquares += x * x;
      frame[i] = x * (window[i] as number);
    }
    // Only a short block reaches here with available < frameLength; the tail past frameLength stays zero.
    frame.fill(0, available, frameLength);
    this.#spectrum.compute(frame, this.#power);
    const power = this.#power;
    const { firstBin, weightStart, weights } = this.#mel;
    const logMel = this.#logMel;
    for (let m = 0; m < logMel.length; m++) {
      const bin = (firstBin[m] as number) - (weightStart[m] as number);
      const end = weightStart[m + 1] as number;
      let sum = 0;
      for (let j = weightStart[m] as number; j < end; j++)
        sum += (weights[j] as number) * (power[bin + j] as number);
      logMel[m] = Math.log(sum + logEps);
    }
    return Math.sqrt(sumSquares / frameLength);
  }
}

/**
 * Analysis frames of a block of `sampleCount` samples: frames start at 0 and hop by hopLength, each fitting entirely,
 * except that a block shorter than one frame makes one (zero-padded) frame.
 */
export function frameCount(sampleCount: number, config: AudioFeatureConfig): number {
  const { frameLength, hopLength } = config;
  if (sampleCount <= 0) return 0;
  if (sampleCount < frameLength) return 1;
  return Math.floor((sampleCount - frameLength) / hopLength) + 1;
}

/** Periodic Hann (the DFT-even window of numpy/scipy `hann(n, sym=False)`): 0.5 − 0.5·cos(2πi/n). */
export function periodicHann(length: number): Float64Array {
  const window = new Float64Array(length);
  for (let i = 0; i < length; i++) window[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / length);
  return window;
}

/** Every frame's log-mel bands, frame-major (frames × melBands): for tests against a reference and for inspection. */
export function logMelFrames(samples: Float64Array, config: AudioFeatureConfig): Float32Array {
  const extractor = new LogMelExtractor(config);
  const out = new Float32Array(extractor.frameCount(samples.length) * config.melBands);
  let offset = 0;
  extractor.process(samples, samples.length, {
    frame(logMel) {
      out.set(logMel, offset);
      offset += logMel.length;
    },
  });
  return out;
}
