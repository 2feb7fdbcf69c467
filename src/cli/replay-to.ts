import { firstValueFrom, Observable } from 'rxjs';
import type { ErrorMessage } from '../client/index.js';
import { connectProducer, type Producer, type ProducerOptions } from '../client/producer.js';
import { InvalidOptionError } from '../core/errors.js';
import { type AnySourceEvent, capturedThrough, isStreamControl, type StreamInput } from '../core/events.js';
import { FlowCredit } from '../core/flow-credit.js';
import type { Logger } from '../core/logger.js';
import { type Micros, wallClockMicros } from '../core/time.js';
import { type ReadOptions, RecordingReader } from '../record/recording-reader.js';
import { replayInputs } from '../record/replay.js';

export interface ReplayToOptions extends ReadOptions {
  /** The server: ws(s)://HOST:PORT/ingest (or http(s)://HOST:PORT). */
  readonly url: string;
  readonly token?: string;
  readonly speed: number | 'max';
  readonly log: Logger;
  /** Capture clock, µs (default: the wall clock): the recording is shifted by whole hops to start at it. */
  readonly clock?: () => Micros;
}

export interface ReplayToResult {
  /** Events handed to the producers, per stream. */
  readonly sent: Record<string, number>;
  /** Messages the server refused, by error code. */
  readonly refused: Record<string, number>;
  /** µs added to every capture time (a whole number of the server's window hops). */
  readonly offset: Micros;
  /** Progress bounds sent: riding on frames (frame flags), and as progress messages of their own. */
  readonly bounds: { readonly frames: number; readonly messages: number };
}

/** Inputs the sender may hold at once: the reader waits beyond it (memory stays bounded at any speed). */
const SEND_CREDITS = 64;
/** A producer with more than this queued and not yet on the socket is waited for. */
const MAX_UNSENT_BYTES = 1 << 20;
/** A progress bound goes out once per this much capture time of a stream. */
const PROGRESS_EVERY: Micros = 100_000;
/** Connection attempts in a row before the replay gives up on the server (backoff 250 ms doubling, up to 10 s). */
const RECONNECT_ATTEMPTS = 6;
/** The share of the server's per-connection message rate used (its token bucket refuses what exceeds it). */
const RATE_SHARE = 0.9;

type Formats = Pick<ProducerOptions, 'audio' | 'video' | 'text' | 'labels'>;

export function isServerUrl(value: string): boolean {
  return /^(ws|wss|http|https):\/\//i.test(value);
}

/**
 * What each stream's hello must declare: the audio rate and channels, and the video format, of its first events
 * (a producer declares them before it sends anything). Reads only as far as it must.
 */
async function streamFormats(file: string, options: ReadOptions): Promise<Map<string, Formats>> {
  const reader = await RecordingReader.open(file, options);
  try {
    const found = new Map<string, Formats>();
    const missing = new Set<string>();
    for (const s of reader.info.streams) {
      if (options.streams && !options.streams.includes(s.streamId)) continue;
      found.set(s.streamId, { text: s.modalities.includes('text'), labels: s.modalities.includes('label') });
      for (const m of s.modalities)
        if (m === 'audio' || m === 'video') missing.add(`${s.streamId}\u0000${m}`);
    }
    for await (const batch of reader.eventBatches(options)) {
      for (const e of batch) {
        const key = `${e.streamId}\u0000${e.modality}`;
        if (!missing.has(key)) continue;
        missing.delete(key);
        const f = found.get(e.streamId) ?? {};
        if (e.modality === 'audio')
          found.set(e.streamId, {
            ...f,
            audio: { sampleRate: e.payload.sampleRate, channels: e.payload.channels as 1 | 2 },
          });
        else if (e.modality === 'video') {
          const p = e.payload;
          found.set(e.streamId, {
            ...f,
            video:
              p.format === 'gray' || p.format === 'rgb'
                ? { format: p.format, width: p.width, height: p.height }
                : { format: p.format },
          });
        }
      }
      if (missing.size === 0) break;
    }
    return found;
  } finally {
    await reader.close();
  }
}

/** A token bucket at the server's message rate, so a fast replay is never refused as `rate_limited`. */
class RateGate {
  #tokens: number;
  #last = performance.now();
  constructor(private readonly perSecond: number) {
    this.#tokens = perSecond;
  }
  async take(): Promise<void> {
    for (;;) {
      const now = performance.now();
      this.#tokens = Math.min(this.perSecond, this.#tokens + ((now - this.#last) / 1000) * this.perSecond);
      this.#last = now;
      if (this.#tokens >= 1) {
        this.#tokens -= 1;
        return;
      }
      await new Promise((r) => setTimeout(r, Math.ceil(((1 - this.#tokens) / this.perSecond) * 1000)));
    }
  }
}

interface Live {
  readonly producer: Producer;
  readonly gate: RateGate;
  nextProgress: Micros;
}

/**
 * Whether a frame can also be its stream's progress bound (frame flags, docs/protocol.md), given the inputs read
 * after it in capture-time order: a video frame's bound is its own time, always safe in time order; an audio frame's
 * is its end, safe once the inputs ahead reach that end (or close the stream) with nothing else of the stream
 * before it. A video frame of the same span comes after the audio frame that holds it, so at real-time speed, where
 * nothing is read ahead, audio carries no bound and the periodic progress message stays.
 */
export function carriesBound(event: AnySourceEvent, ahead: readonly StreamInput[]): boolean {
  if (event.modality === 'video') return true;
  if (event.modality !== 'audio') return false;
  const end = capturedThrough(event);
  for (const next of ahead) {
    if (isStreamControl(next)) {
      if (next.streamId === event.streamId) return next.control === 'close';
      continue;
    }
    if (next.time >= end) return true;
    if (next.streamId === event.streamId) return false;
  }
  return false;
}

/**
 * `braid replay FILE --to ws://HOST:PORT/ingest`: plays a recording into a braid server as its live producers, one
 * braid/client producer per stream, opened before the stream's first event and closed after its last. Capture times
 * are shifted by a whole number of the server's window hops so the recording starts now (its windows hold what they
 * held in the recording); a progress bound goes out every 100 ms of capture time, or rides on the frames themselves
 * where the server reads frame bounds and the inputs read ahead allow it ({@link carriesBound}). The reader waits on the producers
 * (their socket, the server's message rate), so nothing is lost for speed.
 */
export async function replayToServer(file: string, options: ReplayToOptions): Promise<ReplayToResult> {
  if (!isServerUrl(options.url))
    throw new InvalidOptionError('to', `must be a ws://HOST:PORT/ingest URL, got ${options.url}`);
  const { log } = options;
  const formats = await streamFormats(file, options);
  const url = options.url.replace(/\/ingest\/?$/, '');
  const clock = options.clock ?? wallClockMicros;
  const sent: Record<string, number> = {};
  const refused: Record<string, number> = {};
  const live = new Map<string, Live>();
  const bounds = { frames: 0, messages: 0 };
  let offset: Micros | undefined;

  const onError = (streamId: string) => (error: ErrorMessage) => {
    refused[error.code] = (refused[error.code] ?? 0) + 1;
    if (refused[error.code] === 1)
      log.warn(
        { event: 'refused', streamId, code: error.code },
        `the server refused a message of ${streamId}: ${error.code}: ${error.message}`,
      );
  };

  const open = async (streamId: string): Promise<void> => {
    const f = formats.get(streamId) ?? {};
    const producer = await connectProducer({
      url,
      token: options.token,
      streamId,
      ...f,
      // A server that is gone for good ends the replay (with an error) rather than leaving it waiting forever.
      reconnect: { maxAttempts: RECONNECT_ATTEMPTS },
      onError: onError(streamId),
    });
    const rate = producer.ready.accepts.messagesPerSecond;
    live.set(streamId, { producer, gate: new RateGate(Math.max(1, rate * RATE_SHARE)), nextProgress: 0 });
  };

  const send = async (event: AnySourceEvent, ahead: readonly StreamInput[]): Promise<void> => {
    const l = live.get(event.streamId);
    if (!l) return;
    const time = event.time + (offset as number);
    while (l.producer.unsentBytes > MAX_UNSENT_BYTES) await new Promise((r) => setTimeout(r, 5));
    await l.gate.take();
    // A frame that is its own bound saves the progress message (servers that read frame flags say so in ready).
    const bound = l.producer.ready.accepts.frameBounds === true && carriesBound(event, ahead);
    if (bound) {
      bounds.frames++;
      l.nextProgress = time + PROGRESS_EVERY;
    }
    switch (event.modality) {
      case 'audio':
        l.producer.sendAudio(event.payload.samples, time, { bound });
        break;
      case 'video':
        l.producer.sendVideo(event.payload.data, time, { bound });
        break;
      case 'text':
        l.producer.sendText(event.payload.text, time);
        break;
      case 'label':
        l.producer.sendLabels(event.payload.labels, time);
        break;
    }
    sent[event.streamId] = (sent[event.streamId] ?? 0) + 1;
    if (time >= l.nextProgress) {
      await l.gate.take();
      l.producer.progress(time);
      bounds.messages++;
      l.nextProgress = time + PROGRESS_EVERY;
    }
  };

  const handle = async (input: StreamInput, first: Micros, ahead: readonly StreamInput[]): Promise<void> => {
    if (isStreamControl(input)) {
      if (input.control === 'open') {
        await open(input.streamId);
        if (offset === undefined) {
          // The shift is a whole number of hops (as `serve --replay` does), so windows hold what they held.
          const hop = live.get(input.streamId)!.producer.ready.windowing.hop || 1;
          offset = Math.ceil((clock() - first) / hop) * hop;
          log.info(
            { event: 'replay_to', file, url: options.url, offset, hop },
            `replaying ${file} into ${options.url}, capture times shifted by ${offset} µs`,
          );
          // Start when the wall clock reaches the shifted start, so the capture times track the clock.
          const wait = (first + offset - clock()) / 1000;
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        }
      } else if (input.control === 'close') {
        const l = live.get(input.streamId);
        live.delete(input.streamId);
        await l?.producer.close();
      }
      return;
    }
    await send(input as AnySourceEvent, ahead);
  };

  const reader = await RecordingReader.open(file, options);
  const first = reader.info.startTime ?? 0;
  await reader.close();

  const credit = new FlowCredit();
  const lane = credit.lane('send', SEND_CREDITS);
  const queue: StreamInput[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  let failure: unknown;
  // The reader pushes into a bounded queue (credits); one loop sends in order, awaiting each connect and the socket.
  const sender = (async () => {
    for (;;) {
      const input = queue.shift();
      if (input === undefined) {
        if (ended) return;
        await new Promise<void>((r) => (wake = r));
        continue;
      }
      await handle(input, first, queue);
      lane.give();
    }
  })();
  const reading = firstValueFrom(
    new Observable<void>((subscriber) =>
      replayInputs(file, { ...options, credit }).subscribe({
        next: (input) => {
          lane.take();
          queue.push(input);
          wake?.();
          wake = undefined;
        },
        error: (e) => subscriber.error(e),
        complete: () => {
          subscriber.next();
          subscriber.complete();
        },
      }),
    ),
    { defaultValue: undefined },
  );
  try {
    await Promise.race([reading, sender]);
    ended = true;
    wake?.();
    await sender;
  } catch (error) {
    failure = error;
  } finally {
    for (const l of live.values()) await l.producer.close().catch(() => undefined);
  }
  if (failure !== undefined) throw failure;
  return { sent, refused, offset: offset ?? 0, bounds };
}
