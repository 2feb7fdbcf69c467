import FFT from 'fft.js';
import type { AudioFeatureConfig } from './config.js';
import { type MelBand, melFilterbank } from './mel.js';

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
  readonly #fft: FFT;
  readonly #window: Float64Array;
  readonly #fftIn: Float64Array;
  readonly #fftOut: Float64Array;
  readonly #power: Float64Array;
  readonly #bands: readonly MelBand[];
  readonly #logMel: Float64Array;

  constructor(config: AudioFeatureConfig) {
    this.#config = config;
    this.#fft = new FFT(config.fftSize);
    this.#window = periodicHann(config.frameLength);
    this.#fftIn = new Float64Array(config.fftSize);
    this.#fftOut = new Float64Array(2 * config.fftSize);
    this.#power = new Float64Array(config.fftSize / 2 + 1);
    this.#bands = melFilterbank(config);
    this.#logMel = new Float64Array(config.melBands);
  }

  frameCount(sampleCount: number): number {
    const { frameLength, hopLength } = this.#config;
    if (sampleCount <= 0) return 0;
    if (sampleCount < frameLength) return 1;
    return Math.floor((sampleCount - frameLength) / hopLength) + 1;
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
    const { frameLength, fftSize, logEps } = this.#config;
    const input = this.#fftIn;
    const window = this.#window;
    const available = Math.min(frameLength, length - offset);
    let sumSquares = 0;
    for (let i = 0; i < available; i++) {
      const x = samples[offset + i] as number;
      sumSquares += x * x;
      input[i] = x * (window[i] as number);
    }
    // Only a short block reaches here with available < frameLength; the tail past frameLength stays zero.
    input.fill(0, available, frameLength);
    this.#fft.realTransform(this.#fftOut, input);
    const out = this.#fftOut;
    const power = this.#power;
    const bins = fftSize / 2 + 1;
    for (let k = 0; k < bins; k++) {
      const re = out[2 * k] as number;
      const im = out[2 * k + 1] as number;
      power[k] = re * re + im * im;
    }
    const bands = this.#bands;
    const logMel = this.#logMel;
    for (let m = 0; m < bands.length; m++) {
      const band = bands[m] as MelBand;
      const weights = band.weights;
      let sum = 0;
      for (let j = 0; j < weights.length; j++)
        sum += (weights[j] as number) * (power[band.firstBin + j] as number);
      logMel[m] = Math.log(sum + logEps);
    }
    return Math.sqrt(sumSquares / frameLength);
  }
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
