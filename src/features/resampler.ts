import type libsamplerateModule from '@alexanderolsen/libsamplerate-js';

import { InvalidOptionError } from '../core/errors.js';

/** Turns PCM16 of any rate and channel count into mono PCM16 at one target rate. */
export interface PcmResampler {
  readonly targetRate: number;
  /** Mono PCM16 at `targetRate` from interleaved PCM16 at `rate` Hz with `channels` channels (averaged). */
  resample(samples: Int16Array, rate: number, channels: number): Int16Array;
}

const PCM16_SCALE = 1 / 32768;

const loaded = new Map<number, Promise<PcmResampler>>();

/**
 * The resampler to `targetRate`, compiled once per process and rate (libsamplerate's WebAssembly module is 2 MB):
 * safe to share, since every call sets its input rate before it runs and nothing runs concurrently in one thread.
 */
export function loadPcmResampler(targetRate: number): Promise<PcmResampler> {
  let resampler = loaded.get(targetRate);
  if (resampler === undefined) {
    resampler = LibsamplerateResampler.create(targetRate);
    loaded.set(targetRate, resampler);
    resampler.catch(() => loaded.delete(targetRate));
  }
  return resampler;
}

/**
 * libsamplerate (Erik de Castro Lopo's Secret Rabbit Code, compiled to WebAssembly by libsamplerate-js): the reference
 * band-limited sinc resampler, deterministic (the same input gives the same bits on every machine, so a recording
 * made at 48 kHz replays to the same predictions) and the same code in Node and browsers. SRC_SINC_MEDIUM_QUALITY:
 * 121 dB SNR, flat to 90 % of the output's Nyquist (7.2 kHz at 16 kHz). The fastest converter (80 %) dims the top
 * two mel bands by up to 6 nats against a 16 kHz capture and moved the demo model's speech score by 0.16; medium
 * moves it by 0.01, as much as stereo-to-mono rounding alone; the best (97 %) halves that for three times the
 * cost (docs/features.md). Each call is a whole block (src_simple): stateless, so a window's features depend on that
 * window's samples only.
 */
export class LibsamplerateResampler implements PcmResampler {
  private constructor(
    readonly targetRate: number,
    private readonly src: Awaited<ReturnType<typeof libsamplerateModule.create>>,
  ) {}

  static async create(targetRate: number): Promise<LibsamplerateResampler> {
    if (!Number.isInteger(targetRate) || targetRate < 1000 || targetRate > 192_000)
      throw new InvalidOptionError('targetRate', `must be an integer number of Hz, got ${targetRate}`);
    // Loaded here, not at import: 2 MB of JavaScript and WebAssembly, needed once a pipeline is built. A CommonJS
    // (UMD) package: Node's loader gives its exports as `default`, some loaders (tsx) as the namespace itself.
    const loaded = (await import('@alexanderolsen/libsamplerate-js')) as unknown as {
      default?: typeof libsamplerateModule;
    } & typeof libsamplerateModule;
    const { create, ConverterType } = loaded.default ?? loaded;
    const src = await create(1, targetRate, targetRate, {
      converterType: ConverterType.SRC_SINC_MEDIUM_QUALITY,
    });
    return new LibsamplerateResampler(targetRate, src);
  }

  resample(samples: Int16Array, rate: number, channels: number): Int16Array {
    const frames = Math.floor(samples.length / channels);
    const mono = new Float32Array(frames);
    const scale = PCM16_SCALE / channels;
    for (let f = 0, i = 0; f < frames; f++) {
      let sum = 0;
      for (let c = 0; c < channels; c++) sum += samples[i++] as number;
      mono[f] = sum * scale;
    }
    let out: Float32Array = mono;
    if (rate !== this.targetRate) {
      this.src.inputSampleRate = rate;
      out = this.src.simple(mono);
    }
    const pcm = new Int16Array(out.length);
    for (let i = 0; i < out.length; i++) {
      const v = Math.round((out[i] as number) * 32768);
      pcm[i] = Math.min(32767, Math.max(-32768, v));
    }
    return pcm;
  }
}
