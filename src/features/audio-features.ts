import { BadFrameError, InvalidOptionError } from '../core/errors.js';
import type { AnySourceEvent, AudioPayload } from '../core/events.js';
import type { DropCounter } from '../sources/drop-counter.js';
import { type AudioKernel, type AudioWindowAnalyser, createAudioAnalyser } from './audio-analyser.js';
import { writeAudioDescriptors } from './audio-descriptors.js';
import { type AudioFeatureConfig, audioFeatureSize } from './config.js';
import { writeFrameAggregates } from './frame-aggregates.js';
import type { PcmResampler } from './resampler.js';

/** What producers may send: the rates and channel counts the resampler takes (the protocol's range). */
export const MIN_RATE = 8000;
export const MAX_RATE = 48_000;
export const MAX_CHANNELS = 2;

function concat(parts: readonly Int16Array[], total: number): Int16Array {
  const out = new Int16Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/**
 * One window's audio features: the window's PCM16 frames are concatenated in (time, seq) order — gaps are not
 * filled — and analysed as one block; layout [melAggregates × melBands | rmsAggregates | descriptors]. Frames at another rate or
 * with two channels are turned into mono at the features' rate by `resampler` (each run of frames of one format as
 * one block, so the result depends on the window's samples only); without one they are counted and skipped. A window
 * with no usable frame yields an empty array (treated as absent). `kernel` picks the implementation (default:
 * WebAssembly SIMD where it runs); every kernel gives the same bits.
 */
export class AudioFeaturizer {
  readonly size: number;
  readonly #config: AudioFeatureConfig;
  readonly #drops: DropCounter;
  readonly #analyser: AudioWindowAnalyser;
  readonly #resampler: PcmResampler | undefined;

  constructor(
    config: AudioFeatureConfig,
    drops: DropCounter,
    kernel?: AudioKernel,
    resampler?: PcmResampler,
  ) {
    this.#config = config;
    this.#drops = drops;
    this.#analyser = createAudioAnalyser(config, kernel);
    this.size = audioFeatureSize(config);
    if (resampler !== undefined && resampler.targetRate !== config.sampleRate)
      throw new InvalidOptionError(
        'resampler',
        `resamples to ${resampler.targetRate} Hz, the features take ${config.sampleRate} Hz`,
      );
    this.#resampler = resampler;
  }

  get kernel(): AudioKernel {
    return this.#analyser.kernel;
  }

  featurize(events: readonly AnySourceEvent[]): Float32Array {
    const length = this.#gather(events);
    if (length === 0) return new Float32Array(0);
    const stats = this.#analyser.analyse(length);
    const { melBands, melAggregates, rmsAggregates } = this.#config;
    const out = new Float32Array(this.size);
    const offset = writeFrameAggregates(stats, 0, melBands, out, 0, melAggregates);
    const end = writeFrameAggregates(stats, melBands, 1, out, offset, rmsAggregates);
    const { descriptors, sampleRate, hopLength, frameLength } = this.#config;
    if (descriptors !== undefined && descriptors.length > 0) {
      // reserve(0) hands back the buffer the analysed samples are still in.
      const samples = { pcm: this.#analyser.reserve(0), length, frameLength, hopLength };
      writeAudioDescriptors(this.#analyser.lastRows(), samples, descriptors, sampleRate, out, end);
    }
    return out;
  }

  /** Copies the usable frames' samples (as mono PCM16 at the features' rate) into the analyser's buffer; returns how many. */
  #gather(events: readonly AnySourceEvent[]): number {
    let length = 0;
    let run: { rate: number; channels: number; parts: Int16Array[]; samples: number } | undefined;
    const flushRun = () => {
      if (run === undefined) return;
      const block = run.parts.length === 1 ? run.parts[0]! : concat(run.parts, run.samples);
      const pcm = this.#resampler!.resample(block, run.rate, run.channels);
      this.#analyser.reserve(length + pcm.length).set(pcm, length);
      length += pcm.length;
      run = undefined;
    };
    for (const event of events) {
      if (!this.#usable(event)) continue;
      const { samples, sampleRate, channels } = event.payload as AudioPayload;
      if (sampleRate === this.#config.sampleRate && channels === 1) {
        flushRun();
        this.#analyser.reserve(length + samples.length).set(samples, length);
        length += samples.length;
        continue;
      }
      if (run !== undefined && (run.rate !== sampleRate || run.channels !== channels)) flushRun();
      run ??= { rate: sampleRate, channels, parts: [], samples: 0 };
      run.parts.push(samples);
      run.samples += samples.length;
    }
    flushRun();
    return length;
  }

  #usable(event: AnySourceEvent): boolean {
    if (event.modality !== 'audio')
      return this.#drop(event, 'wrong_modality', `expected an audio event, got ${event.modality}`);
    const { sampleRate, channels, samples } = event.payload;
    if (!(samples instanceof Int16Array))
      return this.#drop(event, 'bad_audio', 'audio payload.samples must be an Int16Array of PCM16');
    if (sampleRate === this.#config.sampleRate && channels === 1) return true;
    if (this.#resampler === undefined)
      return this.#drop(
        event,
        sampleRate !== this.#config.sampleRate ? 'unsupported_sample_rate' : 'unsupported_channels',
        `audio features need ${this.#config.sampleRate} Hz mono PCM16 here (no resampler), got ${sampleRate} Hz with ${channels} channels`,
      );
    if (sampleRate < MIN_RATE || sampleRate > MAX_RATE)
      return this.#drop(
        event,
        'unsupported_sample_rate',
        `audio features resample ${MIN_RATE}..${MAX_RATE} Hz, got ${sampleRate} Hz`,
      );
    if (channels > MAX_CHANNELS)
      return this.#drop(
        event,
        'unsupported_channels',
        `audio features take mono or stereo PCM16, got ${channels} channels`,
      );
    return true;
  }

  #drop(event: AnySourceEvent, reason: string, message: string): false {
    this.#drops.record(new BadFrameError(reason, message), event);
    return false;
  }
}
