import { encodeFrame } from '../core/frame.js';
import { audioFrameTime } from '../core/time.js';
import type { ErrorMessage, ReadyMessage } from '../server/protocol.js';
import { type BackoffOptions, backoffDelay } from './backoff.js';
import { drop, endpointUrl, OPEN, type SocketFactory, type SocketLike, socketFactory } from './socket.js';
import { frameSamplesToWindowEnd } from './window-grid.js';

type Modality = 'audio' | 'video' | 'text' | 'label';

export interface ProducerOptions {
  /** The server: http(s)://host:port or ws(s)://host:port (/ingest is added). */
  readonly url: string;
  readonly token?: string;
  readonly streamId: string;
  /** PCM16 little-endian, interleaved when stereo. Any rate from 8 to 48 kHz: the server resamples. */
  readonly audio?: { readonly sampleRate: number; readonly channels?: 1 | 2 };
  readonly video?:
    | { readonly format: 'gray' | 'rgb'; readonly width: number; readonly height: number }
    | { readonly format: 'jpeg' | 'png' };
  readonly text?: boolean;
  readonly labels?: boolean;
  readonly reconnect?: BackoffOptions;
  /** A connection that has not got its `ready` by then (ms) is dropped and made again (default 10 s). */
  readonly connectTimeoutMs?: number;
  /**
   * Sent events kept for resending after a reconnect, in ms of capture time (default 10 s): the server's `ready`
   * says what it has, and everything after it goes again, so a cut loses nothing that is still here.
   */
  readonly resendMs?: number;
  /** Bytes kept for resending (default 8 MiB); the oldest go first, counted in stats.overflowed. */
  readonly maxBufferBytes?: number;
  /** Bytes in flight on the socket above which new messages wait in the outbox (default 1 MiB). */
  readonly maxInFlightBytes?: number;
  /** Capture clock, µs since the epoch (default: the wall clock). */
  readonly clock?: () => number;
  readonly WebSocket?: SocketFactory;
  readonly onError?: (error: ErrorMessage) => void;
  readonly onStatus?: (status: ProducerStatus, detail?: string) => void;
}

export interface FrameOptions {
  /**
   * The frame is also a progress bound at its end (see progress()): every event captured before it has been sent.
   * One message instead of two, for a producer whose audio flows; servers that take it say so in
   * `ready.accepts.frameBounds` (earlier ones ignore the flag: send progress() to them).
   */
  readonly bound?: boolean;
}

export type ProducerStatus = 'connecting' | 'ready' | 'reconnecting' | 'closed' | 'failed';

export interface ProducerStats {
  sent: number;
  resent: number;
  /** Events dropped from the resend buffer before the server confirmed them (buffer full). */
  overflowed: number;
  reconnects: number;
  /** Reconnects that continued the stream (the server's ready said resumed). */
  resumes: number;
}

interface Entry {
  readonly modality?: Modality;
  readonly seq?: number;
  readonly time: number;
  readonly data: string | Uint8Array;
  sent: boolean;
}

const wallClock = (): number => Math.round((performance.timeOrigin + performance.now()) * 1000);

/**
 * A producer of one braid stream: frames and events go out in order through an outbox that is also the resend
 * buffer. When the connection drops it reconnects (exponential backoff with jitter), resumes the stream with the
 * token of its last `ready`, and resends whatever the server's `ready` says it did not get — so the stream keeps its
 * model state, its window grid and its seq numbers. In Node it also watches the server's pings and drops a
 * connection that has gone silent for 2.5 heartbeats.
 */
export class Producer {
  readonly stats: ProducerStats = { sent: 0, resent: 0, overflowed: 0, reconnects: 0, resumes: 0 };
  #ready: ReadyMessage | undefined;
  #socket: SocketLike | undefined;
  #factory!: SocketFactory;
  readonly #options: ProducerOptions;
  readonly #seq: Record<Modality, number> = { audio: 0, video: 0, text: 0, label: 0 };
  readonly #outbox: Entry[] = [];
  #bufferBytes = 0;
  #audioStart: number | undefined;
  #audioSamples = 0;
  /** close() was called: nothing more is taken. */
  #closing = false;
  /** Nothing more is sent and no reconnect is made. */
  #done = false;
  #attempt = 0;
  #flushTimer: ReturnType<typeof setInterval> | undefined;
  #watchdog: ReturnType<typeof setInterval> | undefined;
  #connectTimer: ReturnType<typeof setTimeout> | undefined;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #lastPing = 0;
  #firstReady: { resolve: (r: ReadyMessage) => void; reject: (e: Error) => void } | undefined;
  /** A hello went out and its answer has not come yet. */
  #helloPending = false;

  private constructor(options: ProducerOptions) {
    this.#options = options;
  }

  /** Connects and resolves once the server's first `ready` arrived. */
  static async connect(options: ProducerOptions): Promise<Producer> {
    const producer = new Producer(options);
    producer.#factory = await socketFactory(options.WebSocket);
    const ready = new Promise<ReadyMessage>((resolve, reject) => {
      producer.#firstReady = { resolve, reject };
    });
    producer.#open();
    await ready;
    return producer;
  }

  /**
   * Bytes queued and not yet handed to the socket. A producer that can wait (a replay) waits while this is large:
   * the outbox is also the resend buffer, and beyond its byte budget the oldest entries go, sent or not.
   */
  get unsentBytes(): number {
    let bytes = 0;
    for (const entry of this.#outbox) if (!entry.sent) bytes += size(entry);
    return bytes;
  }

  /** The latest `ready`: model, windowing, accepted formats, heartbeat and resume settings. */
  get ready(): ReadyMessage {
    return this.#ready!;
  }

  /**
   * The length, in samples per channel, to give the next audio frame (usually `frameSamples`) so that a frame ends on
   * each window end of this stream (`ready.windowing`): a window closes once its last sample has arrived, and a
   * frame that runs past its end holds it back until the whole frame is captured. For a capture whose buffer size
   * the producer chooses (an AudioWorklet, a native callback). Before the first frame: `frameSamples`.
   */
  nextAudioFrameSamples(frameSamples: number): number {
    const audio = this.#require('audio', this.#options.audio);
    const grid = this.ready.windowing;
    // An older server's ready has no origin; a model without windows has hop 0.
    if (this.#audioStart === undefined || grid.origin === undefined || !(grid.hop > 0)) return frameSamples;
    const time = audioFrameTime(this.#audioStart, this.#audioSamples, audio.sampleRate);
    return frameSamplesToWindowEnd(grid, time, audio.sampleRate, frameSamples);
  }

  /**
   * Audio samples (PCM16, interleaved when stereo). Without `time`, the time follows from the sample count since the
   * first frame (which is stamped with the clock, back-dated by its own length), as capture devices time audio.
   */
  sendAudio(samples: Int16Array, time?: number, options: FrameOptions = {}): void {
    const audio = this.#require('audio', this.#options.audio);
    const channels = audio.channels ?? 1;
    const frames = samples.length / channels;
    this.#audioStart ??=
      (time ?? this.#clock()) - (time === undefined ? Math.round((frames * 1e6) / audio.sampleRate) : 0);
    const at = time ?? audioFrameTime(this.#audioStart, this.#audioSamples, audio.sampleRate);
    this.#audioSamples += frames;
    this.#frame('audio', at, new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength), options);
  }

  /** One video frame: raw pixels of the declared size, or a JPEG/PNG file. */
  sendVideo(data: Uint8Array, time: number = this.#clock(), options: FrameOptions = {}): void {
    this.#require('video', this.#options.video);
    this.#frame('video', time, data, options);
  }

  sendText(text: string, time: number = this.#clock()): void {
    this.#require('text', this.#options.text);
    const seq = this.#seq.text++;
    this.#push({
      modality: 'text',
      seq,
      time,
      data: JSON.stringify({ type: 'text', time, seq, text }),
      sent: false,
    });
  }

  sendLabels(labels: Readonly<Record<string, number>>, time: number = this.#clock()): void {
    this.#require('label', this.#options.labels);
    const seq = this.#seq.label++;
    this.#push({
      modality: 'label',
      seq,
      time,
      data: JSON.stringify({ type: 'label', time, seq, labels }),
      sent: false,
    });
  }

  /** Promises the server that every event captured before `time` has been sent (windows close at once). */
  progress(time: number = this.#clock()): void {
    this.#push({ time, data: JSON.stringify({ type: 'progress', time }), sent: false });
  }

  /** The capture clock jumped: the server starts the stream's timeline again (its model state kept). */
  reset(): void {
    this.#push({ time: 0, data: JSON.stringify({ type: 'reset' }), sent: false });
  }

  /**
   * Ends the stream: what is queued is handed to the socket (waiting while it drains, and across a reconnect, for
   * at most `timeoutMs`), then a close; resolves once the socket closed.
   */
  async close(timeoutMs = 10_000): Promise<void> {
    if (this.#closing) return;
    this.#push({ time: 0, data: JSON.stringify({ type: 'close' }), sent: false });
    this.#closing = true;
    const deadline = Date.now() + timeoutMs;
    while (this.#outbox.some((e) => !e.sent) && Date.now() < deadline) {
      this.#flush();
      await new Promise((r) => setTimeout(r, 10));
    }
    this.#done = true;
    this.#stopTimers();
    clearTimeout(this.#connectTimer);
    clearTimeout(this.#reconnectTimer);
    const socket = this.#socket;
    if (socket && socket.readyState === OPEN) {
      // The close handshake within what is left of the deadline: a dead network would hold it for ws's own 30 s.
      await new Promise<void>((resolve) => {
        const cut = setTimeout(
          () => {
            drop(socket);
            resolve();
          },
          Math.max(0, deadline - Date.now()),
        );
        socket.addEventListener('close', () => {
          clearTimeout(cut);
          resolve();
        });
        socket.close(1000, 'done');
      });
    } else if (socket) drop(socket); // a handshake still under way would go on to say hello after the close
    this.#status('closed');
  }

  #clock(): number {
    return (this.#options.clock ?? wallClock)();
  }

  #require<T>(modality: Modality, declared: T | undefined): NonNullable<T> {
    if (!declared) throw new TypeError(`${modality} was not declared in connectProducer's options`);
    return declared as NonNullable<T>;
  }

  #frame(modality: 'audio' | 'video', time: number, payload: Uint8Array, options: FrameOptions): void {
    const seq = this.#seq[modality]++;
    const data = encodeFrame({ modality, time, seq, payload, bound: options.bound });
    this.#push({ modality, seq, time, data, sent: false });
  }

  #push(entry: Entry): void {
    if (this.#closing) throw new Error(`stream "${this.#options.streamId}" is closed`);
    this.#outbox.push(entry);
    this.#bufferBytes += size(entry);
    this.#trim(entry.time);
    this.#flush();
  }

  /** Forgets sent events older than the resend span, and the oldest of all beyond the byte budget. */
  #trim(newest: number): void {
    const span = (this.#options.resendMs ?? 10_000) * 1000;
    const maxBytes = this.#options.maxBufferBytes ?? 8 * 1024 * 1024;
    while (this.#outbox.length > 1) {
      const oldest = this.#outbox[0]!;
      const stale = oldest.sent && (oldest.seq === undefined || oldest.time < newest - span);
      const over = this.#bufferBytes > maxBytes;
      if (!stale && !over) break;
      this.#outbox.shift();
      this.#bufferBytes -= size(oldest);
      if (!oldest.sent && oldest.seq !== undefined) this.stats.overflowed++;
    }
  }

  #flush(): void {
    const socket = this.#socket;
    // Not before this connection's ready: on a reconnect, what the cut lost goes first, once `ready.last` says what.
    if (!socket || socket.readyState !== OPEN || this.#ready === undefined || this.#helloPending) return;
    const limit = this.#options.maxInFlightBytes ?? 1024 * 1024;
    for (const entry of this.#outbox) {
      if (entry.sent) continue;
      if (socket.bufferedAmount > limit) return;
      socket.send(entry.data);
      entry.sent = true;
      this.stats.sent++;
    }
  }

  #open(): void {
    this.#status(this.#attempt === 0 && this.stats.reconnects === 0 ? 'connecting' : 'reconnecting');
    const socket = this.#factory(endpointUrl(this.#options.url, '/ingest', this.#options.token));
    this.#socket = socket;
    // A handshake or hello lost on a dead network would wait forever: give it a deadline.
    clearTimeout(this.#connectTimer);
    this.#connectTimer = setTimeout(() => drop(socket), this.#options.connectTimeoutMs ?? 10_000);
    socket.binaryType = 'arraybuffer';
    socket.addEventListener('open', () => {
      if (this.#done) return drop(socket);
      this.#helloPending = true;
      const { streamId, audio, video } = this.#options;
      const modalities: Modality[] = [];
      if (audio) modalities.push('audio');
      if (video) modalities.push('video');
      if (this.#options.text) modalities.push('text');
      if (this.#options.labels) modalities.push('label');
      socket.send(
        JSON.stringify({
          type: 'hello',
          version: 2,
          streamId,
          modalities,
          ...(audio && {
            audio: { sampleRate: audio.sampleRate, format: 'pcm16', channels: audio.channels ?? 1 },
          }),
          ...(video && { video }),
          ...(this.#ready && { resumeToken: this.#ready.resumeToken }),
        }),
      );
    });
    socket.addEventListener('message', (event) => {
      if (typeof event.data !== 'string') return;
      const message = JSON.parse(event.data) as ReadyMessage | ErrorMessage | { type: string };
      if (message.type === 'ready') this.#onReady(message as ReadyMessage);
      else if (message.type === 'error') {
        const error = message as ErrorMessage;
        if (isHelloError(error.code) && socket !== undefined && this.#helloPending) {
          // A hello that cannot work will not work on a retry either (on a reconnect: the stream is someone
          // else's now).
          this.#closing = true;
          this.#done = true;
          this.#stopTimers();
          const failure = new Error(
            `braid refused the hello of "${this.#options.streamId}": ${error.code}: ${error.message}`,
          );
          this.#firstReady?.reject(failure);
          this.#firstReady = undefined;
          this.#status('failed', failure.message);
          this.#options.onError?.(error);
          socket.close(1000);
          return;
        }
        this.#options.onError?.(error);
      }
    });
    socket.addEventListener('close', () => this.#onClose(socket));
    socket.addEventListener('error', () => {});
    socket.on?.('ping', () => {
      this.#lastPing = Date.now();
    });
  }

  #onReady(ready: ReadyMessage): void {
    if (this.#done) return;
    this.#helloPending = false;
    clearTimeout(this.#connectTimer);
    const resumed = this.#ready !== undefined;
    if (ready.resumed) this.stats.resumes++;
    this.#ready = ready;
    this.#attempt = 0;
    // Everything the server has (its `last` positions) is dropped; the rest goes again, in order. A control (a
    // reset, a progress bound) sent before an event the server has reached it too, on the same ordered socket:
    // sent again, a reset would restart the stream's timeline a second time and discard what came after the first.
    const confirmed = (entry: Entry): boolean => {
      const last = entry.modality ? ready.last?.[entry.modality] : undefined;
      return ready.resumed && last !== undefined && entry.seq !== undefined && entry.seq <= last.seq;
    };
    let reached = false;
    for (let i = this.#outbox.length - 1; i >= 0; i--) {
      const entry = this.#outbox[i]!;
      const taken = confirmed(entry);
      reached ||= taken;
      if (taken || (reached && entry.sent && entry.seq === undefined)) {
        this.#outbox.splice(i, 1);
        this.#bufferBytes -= size(entry);
      } else if (resumed && entry.sent) {
        entry.sent = false;
        this.stats.resent++;
      }
    }
    this.#lastPing = Date.now();
    this.#startTimers(ready.heartbeatMs);
    this.#status('ready', ready.resumed ? 'resumed' : undefined);
    this.#firstReady?.resolve(ready);
    this.#firstReady = undefined;
    this.#flush();
  }

  #onClose(socket: SocketLike): void {
    if (socket !== this.#socket) return;
    clearTimeout(this.#connectTimer);
    this.#stopTimers();
    if (this.#done) return;
    const max = this.#options.reconnect?.maxAttempts ?? Number.POSITIVE_INFINITY;
    if (this.#attempt >= max) {
      this.#status('failed', `gave up after ${this.#attempt} attempts`);
      this.#firstReady?.reject(new Error(`could not connect to ${this.#options.url}`));
      return;
    }
    const delay = backoffDelay(this.#attempt++, this.#options.reconnect);
    this.stats.reconnects++;
    this.#status('reconnecting', `in ${delay} ms`);
    this.#reconnectTimer = setTimeout(() => {
      if (!this.#done) this.#open();
    }, delay);
  }

  #startTimers(heartbeatMs: number): void {
    this.#stopTimers();
    // Messages held back by a full socket go out as it drains.
    this.#flushTimer = setInterval(() => this.#flush(), 20);
    const socket = this.#socket;
    if (socket?.on === undefined) return; // browsers answer pings without telling the page
    this.#watchdog = setInterval(() => {
      if (Date.now() - this.#lastPing > 2.5 * heartbeatMs) drop(socket);
    }, heartbeatMs);
  }

  #stopTimers(): void {
    clearInterval(this.#flushTimer);
    clearInterval(this.#watchdog);
  }

  #status(status: ProducerStatus, detail?: string): void {
    this.#options.onStatus?.(status, detail);
  }
}

const size = (entry: Entry): number =>
  typeof entry.data === 'string' ? entry.data.length * 2 : entry.data.byteLength;

/** Refusals of the hello itself: retrying the same hello cannot succeed. */
const isHelloError = (code: string): boolean =>
  [
    'bad_hello',
    'frame_too_large',
    'unsupported_sample_rate',
    'unsupported_channels',
    'stream_in_use',
    'bad_resume_token',
  ].includes(code);

/** Connects a producer of one stream (see {@link Producer}); resolves once the server is ready for it. */
export function connectProducer(options: ProducerOptions): Promise<Producer> {
  return Producer.connect(options);
}
