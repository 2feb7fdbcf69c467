import { endianness } from 'node:os';
import type { Subscriber } from 'rxjs';
import { InvalidOptionError, SourceError } from '../core/errors.js';
import type { SourceEvent } from '../core/events.js';
import { audioFrameTime, MICROS_PER_SECOND, type Micros } from '../core/time.js';
import { FixedSizeChunker } from './fixed-size-chunker.js';
import { checkOrigin } from './origin.js';

const LITTLE_ENDIAN_HOST = endianness() === 'LE';

export interface PcmFramerOptions {
  readonly streamId: string;
  readonly sampleRate: number;
  /** Samples per event (e.g. 320 = 20 ms at 16 kHz). */
  readonly frameSamples: number;
  /**
   * Originating time of the first sample. When absent it is taken at the first chunk as "now minus the chunk's
   * duration" — the chunk's samples were captured just before they arrived — and every later frame is placed by
   * its sample count, so arrival jitter never reaches the timestamps. Whole non-negative µs (InvalidOptionError).
   */
  readonly origin?: Micros;
  readonly clock: () => Micros;
  /**
   * Samples of the frame that starts at capture time `time` (default: always `frameSamples`): how frames are cut to
   * end where a stream's windows end (`frameSamplesToWindowEnd`, src/client/window-grid.ts), as the demo page does,
   * so a window holds exactly its own samples and closes as its last sample arrives. A whole positive number.
   */
  readonly frameSamplesAt?: (time: Micros) => number;
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
 * samples (or of the number `frameSamplesAt` gives each), stamped by sample count with {@link audioFrameTime}. Chunk boundaries may fall anywhere, even inside a
 * sample. A stream that ends inside a sample leaves a stray byte: {@link flush} drops it and counts it in
 * {@link strayBytes}, for the source to report.
 */
export class PcmFramer {
  readonly #options: PcmFramerOptions;
  readonly #chunker: FixedSizeChunker;
  #origin: Micros | undefined;
  #samplesBefore = 0;
  /** Samples of the frames the chunker has started, the unfinished one included. */
  #samplesCut = 0;
  #seq = 0;
  #strayBytes = 0;

  constructor(options: PcmFramerOptions) {
    this.#options = options;
    const { frameSamplesAt } = options;
    this.#chunker = new FixedSizeChunker(
      frameSamplesAt === undefined
        ? options.frameSamples * 2
        : () => {
            const time = audioFrameTime(this.#origin ?? 0, this.#samplesCut, options.sampleRate);
            const samples = frameSamplesAt(time);
            if (!Number.isInteger(samples) || samples < 1)
              throw new InvalidOptionError(
                'frameSamplesAt',
                `must give a whole positive number of samples, got ${samples} at ${time} µs`,
              );
            this.#samplesCut += samples;
            return samples * 2;
          },
    );
    this.#origin = checkOrigin(options.origin);
  }

  /** Bytes dropped by {@link flush} because the stream ended inside a sample (0 for whole PCM16). */
  get strayBytes(): number {
    return this.#strayBytes;
  }

  push(chunk: Uint8Array): SourceEvent<'audio'>[] {
    if (this.#origin === undefined) {
      const chunkMicros = Math.floor(((chunk.byteLength / 2) * MICROS_PER_SECOND) / this.#options.sampleRate);
      this.#origin = this.#options.clock() - chunkMicros;
    }
    return this.#chunker.push(chunk).map((frame) => this.#emit(frame));
  }

  /**
   * {@link push}, its frames handed to `subscriber`; a `frameSamplesAt` that throws (or gives no whole size) errors
   * the subscriber instead, ending that source rather than the process (a chunk arrives in a stream's handler).
   */
  pushTo(chunk: Uint8Array, subscriber: Subscriber<SourceEvent<'audio'>>): void {
    let events: SourceEvent<'audio'>[];
    try {
      events = this.push(chunk);
    } catch (error) {
      return subscriber.error(error);
    }
    for (const event of events) subscriber.next(event);
  }

  /** The last, shorter frame at the end of a stream (whole samples only), if any. */
  flush(): SourceEvent<'audio'>[] {
    const partial = this.#chunker.takePartial();
    const whole = partial.byteLength - (partial.byteLength % 2);
    this.#strayBytes += partial.byteLength - whole;
    return whole > 0 ? [this.#emit(partial.subarray(0, whole))] : [];
  }

  #emit(bytes: Uint8Array): SourceEvent<'audio'> {
    const ownBuffer = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
    // The chunker hands each frame over in a fresh buffer: on a little-endian host it becomes the samples as is.
    if (LITTLE_ENDIAN_HOST && ownBuffer) return this.#event(new Int16Array(bytes.buffer as ArrayBuffer));
    const samples = new Int16Array(bytes.byteLength / 2);
    if (LITTLE_ENDIAN_HOST) new Uint8Array(samples.buffer).set(bytes);
    else {
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let i = 0; i < samples.length; i++) samples[i] = view.getInt16(2 * i, true);
    }
    return this.#event(samples);
  }

  #event(samples: Int16Array): SourceEvent<'audio'> {
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

/** The error a PCM source ends with when its program's output stopped inside a sample. */
export const strayByteError = (program: string, bytes: number): SourceError =>
  new SourceError(
    `${program} output ended inside a sample: ${bytes} stray byte(s) after the last whole PCM16 sample (truncated output?)`,
  );
