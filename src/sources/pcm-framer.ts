import { endianness } from 'node:os';
import { InvalidOptionError } from '../core/errors.js';
import type { SourceEvent } from '../core/events.js';
import { audioFrameTime, MICROS_PER_SECOND, type Micros } from '../core/time.js';

const LITTLE_ENDIAN_HOST = endianness() === 'LE';

export interface PcmFramerOptions {
  readonly streamId: string;
  readonly sampleRate: number;
  /** Samples per event (e.g. 320 = 20 ms at 16 kHz). */
  readonly frameSamples: number;
  /**
   * Originating time of the first sample. When absent it is taken at the first chunk as "now minus the chunk's
   * duration" — the chunk's samples were captured just before they arrived — and every later frame is placed by
   * its sample count, so arrival jitter never reaches the timestamps.
   */
  readonly origin?: Micros;
  readonly clock: () => Micros;
}

/** Frame length in samples for a duration in ms, checked to be 10..20 ms and a whole number of samples. */
export function frameSamplesFor(frameMs: number, sampleRate: number): number {
  if (!Number.isFinite(frameMs) || frameMs < 10 || frameMs > 20)
    throw new InvalidOptionError('frameMs', `must be 10..20 ms, got ${frameMs}`);
  const samples = (frameMs * sampleRate) / 1000;
  if (!Number.isInteger(samples))
    throw new InvalidOptionError(
      'frameMs',
      `${frameMs} ms is not a whole number of samples at ${sampleRate} Hz`,
    );
  return samples;
}

/**
 * Cuts a little-endian mono PCM16 byte stream (from a recorder or ffmpeg) into audio events of a fixed number of
 * samples, stamped by sample count with {@link audioFrameTime}. Chunk boundaries may fall anywhere, even inside a
 * sample.
 */
export class PcmFramer {
  readonly #options: PcmFramerOptions;
  readonly #frameBytes: number;
  #pending: Uint8Array;
  #pendingBytes = 0;
  #origin: Micros | undefined;
  #samplesBefore = 0;
  #seq = 0;

  constructor(options: PcmFramerOptions) {
    this.#options = options;
    this.#frameBytes = options.frameSamples * 2;
    this.#pending = new Uint8Array(this.#frameBytes);
    this.#origin = options.origin;
  }

  push(chunk: Uint8Array): SourceEvent<'audio'>[] {
    if (this.#origin === undefined) {
      const chunkMicros = Math.floor(((chunk.byteLength / 2) * MICROS_PER_SECOND) / this.#options.sampleRate);
      this.#origin = this.#options.clock() - chunkMicros;
    }
    const events: SourceEvent<'audio'>[] = [];
    let offset = 0;
    while (offset < chunk.byteLength) {
      const take = Math.min(this.#frameBytes - this.#pendingBytes, chunk.byteLength - offset);
      this.#pending.set(chunk.subarray(offset, offset + take), this.#pendingBytes);
      this.#pendingBytes += take;
      offset += take;
      if (this.#pendingBytes === this.#frameBytes) events.push(this.#emit(this.#frameBytes));
    }
    return events;
  }

  /** The last, shorter frame at the end of a stream (whole samples only), if any. */
  flush(): SourceEvent<'audio'>[] {
    const bytes = this.#pendingBytes - (this.#pendingBytes % 2);
    return bytes > 0 ? [this.#emit(bytes)] : [];
  }

  #emit(bytes: number): SourceEvent<'audio'> {
    const samples = new Int16Array(bytes / 2);
    if (LITTLE_ENDIAN_HOST) new Uint8Array(samples.buffer).set(this.#pending.subarray(0, bytes));
    else {
      const view = new DataView(this.#pending.buffer, 0, bytes);
      for (let i = 0; i < samples.length; i++) samples[i] = view.getInt16(2 * i, true);
    }
    this.#pendingBytes = 0;
    const { streamId, sampleRate } = this.#options;
    const event: SourceEvent<'audio'> = {
      streamId,
      modality: 'audio',
      time: audioFrameTime(this.#origin ?? 0, this.#samplesBefore, sampleRate),
      seq: this.#seq++,
      payload: { sampleRate, channels: 1, samples },
    };
    this.#samplesBefore += samples.length;
    return event;
  }
}
