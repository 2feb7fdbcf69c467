import { type AnySourceEvent, capturedThrough, type Modality, type StreamInput } from '../core/events.js';
import { MAX_TIME_MICROS } from '../core/time.js';
import {
  decodeFrame,
  describeZodError,
  FRAME_HEADER_BYTES,
  type Hello,
  helloSchema,
  MAX_MESSAGE_LABELS,
  type MessageIdentity,
  ProtocolError,
  producerMessageSchema,
} from './protocol.js';
import type { Claim, ClaimRefusal, Position } from './stream-directory.js';

export interface IngestLimits {
  /** Messages per second a producer may send (token bucket, burst = one second's worth). */
  readonly messagesPerSecond: number;
  /** Largest message the socket takes, in bytes: a hello whose raw video frames could never fit is refused. */
  readonly maxMessageBytes?: number;
  /** Audio the pipeline can use; a hello with other audio is refused. Absent: anything the protocol allows. */
  readonly audio?: {
    readonly sampleRates: { readonly min: number; readonly max: number };
    readonly channels: readonly number[];
  };
}

export interface IngestCounters {
  framesIn: number;
  rejected: Record<string, number>;
}

export interface SessionHooks {
  /** Inputs for the pipeline (events and stream controls). */
  readonly emit: (input: StreamInput) => void;
  /** Claims the hello's stream: new, resumed or taken over (StreamDirectory.claim). */
  readonly claim: (hello: Hello) => Claim | ClaimRefusal;
  /** A v2 hello was taken: answer it with a `ready`. */
  readonly ready: (hello: Hello, claim: Claim) => void;
  /** Any hello was taken (for the log). */
  readonly claimed?: (hello: Hello, claim: Claim) => void;
}

/**
 * One producer connection: a JSON hello, then binary audio/video frames and JSON text/label events. Turns them into
 * StreamInputs for the pipeline; the stream's open, close, suspension and resume go through its claim. After a
 * resume, a modality whose first seq skips past the last one taken lost events in the cut: a `gap` control marks the
 * windows they fell in as partial. Every refused message is counted by reason and answered with an error naming the
 * problem; nothing here throws to the socket.
 */
export class IngestSession {
  #hello: Hello | undefined;
  #claim: Claim | undefined;
  /** After a resume: the last position taken per modality, until that modality's first event arrives. */
  #resumedFrom: Partial<Record<Modality, Position>> = {};
  #tokens: number;
  #lastRefill: number;
  #closed = false;

  constructor(
    private readonly hooks: SessionHooks,
    private readonly counters: IngestCounters,
    private readonly limits: IngestLimits,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.#tokens = limits.messagesPerSecond;
    this.#lastRefill = now();
  }

  get streamId(): string | undefined {
    return this.#hello?.streamId;
  }

  /** Handles one message; returns an error to send back, or undefined when it was accepted. */
  handle(data: Uint8Array | string, isBinary: boolean): ProtocolError | undefined {
    try {
      this.#rateLimit();
      if (isBinary) this.#binary(data as Uint8Array);
      else this.#json(typeof data === 'string' ? data : Buffer.from(data).toString('utf8'));
      return undefined;
    } catch (error) {
      const e =
        error instanceof ProtocolError
          ? error
          : new ProtocolError('internal', error instanceof Error ? error.message : String(error));
      this.counters.rejected[e.reason] = (this.counters.rejected[e.reason] ?? 0) + 1;
      return e;
    }
  }

  /**
   * The connection ended. `clean` (a close message or close frame, or the server closed it): the stream closes,
   * which flushes its windows and frees its state. Otherwise (cut off) it is suspended for the resume grace.
   */
  close(clean = true): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#claim?.release(clean);
  }

  #emit(input: StreamInput): void {
    this.hooks.emit(input);
  }

  /** An event passed every check: note the stream's position, after marking what a resume could not bring back. */
  #accept(event: AnySourceEvent): void {
    const from = this.#resumedFrom[event.modality];
    if (from !== undefined) {
      delete this.#resumedFrom[event.modality];
      if (event.seq > from.seq + 1 && event.time > from.time)
        this.#emit({
          control: 'gap',
          streamId: event.streamId,
          modality: event.modality,
          from: from.time,
          to: event.time,
        });
    }
    this.counters.framesIn++;
    this.#claim!.accepted(event.modality, event.seq, event.time);
    this.#emit(event);
  }

  #rateLimit(): void {
    const now = this.now();
    const rate = this.limits.messagesPerSecond;
    this.#tokens = Math.min(rate, this.#tokens + ((now - this.#lastRefill) / 1000) * rate);
    this.#lastRefill = now;
    if (this.#tokens < 1)
      throw new ProtocolError('rate_limited', `more than ${rate} messages per second: message dropped`);
    this.#tokens -= 1;
  }

  #json(text: string): void {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new ProtocolError('bad_json', `message is not valid JSON (${text.length} characters)`);
    }
    if (this.#hello === undefined) {
      const parsed = helloSchema.safeParse(value);
      if (!parsed.success)
        throw new ProtocolError(
          'bad_hello',
          `first message must be a hello: ${describeZodError(parsed.error)}`,
        );
      if (this.#closed) throw new ProtocolError('closed', 'this connection already closed its stream');
      this.#checkUsable(parsed.data);
      const claim = this.hooks.claim(parsed.data);
      if ('refused' in claim) throw new ProtocolError(claim.refused, claim.message);
      this.#hello = parsed.data;
      this.#claim = claim;
      this.#resumedFrom = claim.resumed ? { ...claim.last } : {};
      this.hooks.claimed?.(parsed.data, claim);
      if (parsed.data.version >= 2) this.hooks.ready(parsed.data, claim);
      return;
    }
    if ((value as { type?: unknown } | null)?.type === 'hello')
      throw new ProtocolError(
        'bad_message',
        `this connection already said hello for stream "${this.#hello.streamId}": one hello a connection`,
      );
    const labels = (value as { labels?: unknown } | null)?.labels;
    if (typeof labels === 'object' && labels !== null && Object.keys(labels).length > MAX_MESSAGE_LABELS)
      throw new ProtocolError('bad_message', `labels: at most ${MAX_MESSAGE_LABELS} labels a message`);
    const parsed = producerMessageSchema.safeParse(value);
    if (!parsed.success) throw new ProtocolError('bad_message', describeZodError(parsed.error));
    const message = parsed.data;
    const streamId = this.#hello.streamId;
    if (message.type === 'close') return this.close();
    if (this.#closed) throw new ProtocolError('closed', 'stream is closed');
    if (message.type === 'progress') {
      this.#emit({ control: 'progress', streamId, time: message.time });
      return;
    }
    if (message.type === 'reset') {
      this.#emit({ control: 'restart', streamId });
      return;
    }
    this.#requireModality(message.type, { seq: message.seq, time: message.time });
    if (message.type === 'text')
      this.#accept({
        streamId,
        modality: 'text',
        time: message.time,
        seq: message.seq,
        payload: { text: message.text },
      });
    else
      this.#accept({
        streamId,
        modality: 'label',
        time: message.time,
        seq: message.seq,
        payload: { labels: message.labels },
      });
  }

  #binary(data: Uint8Array): void {
    const hello = this.#hello;
    if (hello === undefined) throw new ProtocolError('no_hello', 'send a JSON hello before binary frames');
    if (this.#closed) throw new ProtocolError('closed', 'stream is closed');
    const frame = decodeFrame(data);
    const subject = { modality: frame.modality, seq: frame.seq, time: frame.time };
    this.#requireModality(frame.modality, subject);
    const { streamId } = hello;
    let event: AnySourceEvent;
    if (frame.modality === 'audio') {
      const channels = hello.audio!.channels;
      // A frame of no samples holds no audio and no time: its bound flag would promise nothing was captured.
      if (frame.payload.byteLength === 0)
        throw new ProtocolError('empty_audio', 'audio frame holds no samples', subject);
      if (frame.payload.byteLength % (2 * channels) !== 0)
        throw new ProtocolError(
          'odd_pcm_bytes',
          `PCM16 audio payload of ${frame.payload.byteLength} bytes is not a whole number of ${channels}-channel samples`,
          subject,
        );
      // Copy: the payload is a view of the socket's read, and an Int16Array needs an even byte offset. Into Node's
      // buffer pool (slices 8-byte aligned): a fresh ArrayBuffer per 10 ms frame cost four times as much.
      // Node aligns pool slices to 8 bytes today; should that change, a slice at an odd offset gets its own buffer.
      let copy = Buffer.allocUnsafe(frame.payload.byteLength);
      if (copy.byteOffset % 2 !== 0) copy = Buffer.alloc(frame.payload.byteLength);
      copy.set(frame.payload);
      const samples = new Int16Array(copy.buffer, copy.byteOffset, copy.byteLength / 2);
      event = {
        streamId,
        modality: 'audio',
        time: frame.time,
        seq: frame.seq,
        payload: { sampleRate: hello.audio!.sampleRate, channels, samples },
      };
    } else {
      const video = hello.video!;
      const data = new Uint8Array(frame.payload);
      if (video.format === 'gray' || video.format === 'rgb') {
        const expected = video.width * video.height * (video.format === 'rgb' ? 3 : 1);
        if (data.byteLength !== expected)
          throw new ProtocolError(
            'bad_video_size',
            `raw ${video.format} ${video.width}x${video.height} frame needs ${expected} bytes, got ${data.byteLength}`,
            subject,
          );
        event = {
          streamId,
          modality: 'video',
          time: frame.time,
          seq: frame.seq,
          payload: { format: video.format, width: video.width, height: video.height, data },
        };
      } else {
        if (data.byteLength === 0)
          throw new ProtocolError('empty_image', 'compressed video frame is empty', subject);
        event = {
          streamId,
          modality: 'video',
          time: frame.time,
          seq: frame.seq,
          payload: { format: video.format, data },
        };
      }
    }
    this.#accept(event);
    // A frame flagged as a bound closes windows as a progress message at its end would (audio: where the next
    // frame, stamped from the sample count, starts).
    if (!frame.bound) return;
    this.#emit({ control: 'progress', streamId, time: Math.min(MAX_TIME_MICROS, capturedThrough(event)) });
  }

  #requireModality(modality: 'audio' | 'video' | 'text' | 'label', subject: MessageIdentity = {}): void {
    if (!this.#hello!.modalities.includes(modality))
      throw new ProtocolError('undeclared_modality', `${modality} was not declared in this stream's hello`, {
        modality,
        ...subject,
      });
  }

  /** Refuses, at the hello, a stream whose every frame would be refused later. */
  #checkUsable(hello: Hello): void {
    const { maxMessageBytes } = this.limits;
    const video = hello.modalities.includes('video') ? hello.video : undefined;
    if (maxMessageBytes !== undefined && video && (video.format === 'gray' || video.format === 'rgb')) {
      const bytes = FRAME_HEADER_BYTES + video.width * video.height * (video.format === 'rgb' ? 3 : 1);
      if (bytes > maxMessageBytes)
        throw new ProtocolError(
          'frame_too_large',
          `a raw ${video.format} ${video.width}x${video.height} frame takes ${bytes} bytes, more than this server's message limit of ${maxMessageBytes}: send smaller frames or jpeg`,
        );
    }
    const audio = hello.modalities.includes('audio') ? hello.audio : undefined;
    // Without the features' own limits, what any braid server takes (as its ready says).
    const accepts = this.limits.audio ?? { sampleRates: { min: 8000, max: 48_000 }, channels: [1, 2] };
    if (audio) {
      const { min, max } = accepts.sampleRates;
      if (audio.sampleRate < min || audio.sampleRate > max)
        throw new ProtocolError(
          'unsupported_sample_rate',
          `audio at ${audio.sampleRate} Hz cannot be used: this server takes ${min}..${max} Hz`,
        );
      if (!accepts.channels.includes(audio.channels))
        throw new ProtocolError(
          'unsupported_channels',
          `audio with ${audio.channels} channels cannot be used: this server takes ${accepts.channels.join(' or ')}`,
        );
    }
  }
}
