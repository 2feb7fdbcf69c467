import { BadFrameError } from '../core/errors.js';
import type { AnySourceEvent } from '../core/events.js';
import type { DropCounter } from '../sources/drop-counter.js';
import { type AudioKernel, type AudioWindowAnalyser, createAudioAnalyser } from './audio-analyser.js';
import type { AudioFeatureConfig } from './config.js';
import { writeFrameAggregates } from './frame-aggregates.js';

/**
 * One window's audio features: the window's PCM16 frames are concatenated in (time, seq) order — gaps are not
 * filled — and analysed as one block; layout [melAggregates × melBands | rmsAggregates]. Frames at another rate or
 * channel count are counted and skipped; a window with no usable frame yields an empty array (treated as absent).
 * `kernel` picks the implementation (default: WebAssembly SIMD where it runs); every kernel gives the same bits.
 */
export class AudioFeaturizer {
  readonly size: number;
  readonly #config: AudioFeatureConfig;
  readonly #drops: DropCounter;
  readonly #analyser: AudioWindowAnalyser;

  constructor(config: AudioFeatureConfig, drops: DropCounter, kernel?: AudioKernel) {
    this.#config = config;
    this.#drops = drops;
    this.#analyser = createAudioAnalyser(config, kernel);
    this.size = config.melBands * config.melAggregates.length + config.rmsAggregates.length;
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
    writeFrameAggregates(stats, melBands, 1, out, offset, rmsAggregates);
    return out;
  }

  /** Copies the usable frames' PCM16 samples into the analyser's buffer; returns how many. */
  #gather(events: readonly AnySourceEvent[]): number {
    let length = 0;
    for (const event of events) {
      if (!this.#usable(event)) continue;
      const pcm = (event.payload as { samples: Int16Array }).samples;
      this.#analyser.reserve(length + pcm.length).set(pcm, length);
      length += pcm.length;
    }
    return length;
  }

  #usable(event: AnySourceEvent): boolean {
    if (event.modality !== 'audio')
      return this.#drop(event, 'wrong_modality', `expected an audio event, got ${event.modality}`);
    const { sampleRate, channels, samples } = event.payload;
    if (!(samples instanceof Int16Array))
      return this.#drop(event, 'bad_audio', 'audio payload.samples must be an Int16Array of PCM16');
    if (sampleRate !== this.#config.sampleRate)
      return this.#drop(
        event,
        'unsupported_sample_rate',
        `audio features need ${this.#config.sampleRate} Hz PCM16 (resample in the source), got ${sampleRate} Hz`,
      );
    if (channels !== 1)
      return this.#drop(
        event,
        'unsupported_channels',
        `audio features need mono PCM16, got ${channels} channels`,
      );
    return true;
  }

  #drop(event: AnySourceEvent, reason: string, message: string): false {
    this.#drops.record(new BadFrameError(reason, message), event);
    return false;
  }
}
