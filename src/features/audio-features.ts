import { BadFrameError } from '../core/errors.js';
import type { AnySourceEvent } from '../core/events.js';
import type { DropCounter } from '../sources/drop-counter.js';
import type { AudioFeatureConfig } from './config.js';
import { FrameAccumulator } from './frame-aggregates.js';
import { LogMelExtractor } from './log-mel.js';

const PCM16_SCALE = 1 / 32768;

/**
 * One window's audio features: the window's PCM16 frames are concatenated in (time, seq) order — gaps are not
 * filled — and analysed as one block; layout [melAggregates × melBands | rmsAggregates]. Frames at another rate or
 * channel count are counted and skipped; a window with no usable frame yields an empty array (treated as absent).
 */
export class AudioFeaturizer {
  readonly size: number;
  readonly #config: AudioFeatureConfig;
  readonly #drops: DropCounter;
  readonly #extractor: LogMelExtractor;
  readonly #mel: FrameAccumulator;
  readonly #rms: FrameAccumulator;
  #samples = new Float64Array(16_000);

  constructor(config: AudioFeatureConfig, drops: DropCounter) {
    this.#config = config;
    this.#drops = drops;
    this.#extractor = new LogMelExtractor(config);
    this.#mel = new FrameAccumulator(config.melBands);
    this.#rms = new FrameAccumulator(1);
    this.size = config.melBands * config.melAggregates.length + config.rmsAggregates.length;
  }

  featurize(events: readonly AnySourceEvent[]): Float32Array {
    const length = this.#gather(events);
    if (length === 0) return new Float32Array(0);
    const mel = this.#mel;
    const rms = this.#rms;
    mel.reset();
    rms.reset();
    this.#extractor.process(this.#samples, length, {
      frame(logMel, frameRms) {
        mel.add(logMel);
        rms.addScalar(frameRms);
      },
    });
    const out = new Float32Array(this.size);
    const offset = mel.write(out, 0, this.#config.melAggregates);
    rms.write(out, offset, this.#config.rmsAggregates);
    return out;
  }

  /** Copies the usable frames' samples, scaled to [-1, 1), into the reused sample buffer; returns how many. */
  #gather(events: readonly AnySourceEvent[]): number {
    let length = 0;
    for (const event of events) {
      if (!this.#usable(event)) continue;
      const pcm = (event.payload as { samples: Int16Array }).samples;
      this.#reserve(length + pcm.length);
      const samples = this.#samples;
      for (let i = 0; i < pcm.length; i++) samples[length + i] = (pcm[i] as number) * PCM16_SCALE;
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

  #reserve(length: number): void {
    if (length <= this.#samples.length) return;
    const grown = new Float64Array(Math.max(length, this.#samples.length * 2));
    grown.set(this.#samples);
    this.#samples = grown;
  }
}
