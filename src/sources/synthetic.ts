import { Observable } from 'rxjs';
import { InvalidOptionError } from '../core/errors.js';
import { type AnySourceEvent, MODALITIES, type Modality, type RawPixelFormat } from '../core/events.js';
import { mulberry32 } from '../core/random.js';
import { audioFrameTime, MICROS_PER_SECOND, type Micros, wallClockMicros } from '../core/time.js';
import { frameSamplesFor } from './pcm-framer.js';

export interface SyntheticOptions {
  readonly streamId: string;
  /** Same seed, same options: the same events, bit for bit. */
  readonly seed: number;
  /** Length of the stream in µs. */
  readonly duration: Micros;
  /** Time of the first event (default 0; for `pace: 'realtime'` the wall clock at subscription). */
  readonly origin?: Micros;
  /** Modalities to produce (default all four). */
  readonly modalities?: readonly Modality[];
  /** Length of the segments that are each active or quiet, chosen from the seed (default 1 s). */
  readonly segment?: Micros;
  readonly audio?: {
    /** Event length, 10..20 ms (default 20). */
    readonly frameMs?: number;
    /** Tone played in active segments (default 440 Hz, amplitude 0.3 of full scale). */
    readonly toneHz?: number;
    readonly amplitude?: number;
    /** Uniform noise level everywhere (default 0.02 of full scale). */
    readonly noise?: number;
  };
  readonly video?: {
    readonly width?: number;
    readonly height?: number;
    readonly fps?: number;
    readonly format?: RawPixelFormat;
  };
  /** A text event every `every` µs (default 500 ms). */
  readonly text?: { readonly every?: Micros };
  /** Name of the label that is 1 in active segments (default `active`). */
  readonly label?: string;
  /** `none` (default): emit as fast as the subscriber takes them; `realtime`: at their times on the wall clock. */
  readonly pace?: 'none' | 'realtime';
  /** Wall clock for `realtime` pacing and its default origin (default: the system clock). */
  readonly clock?: () => Micros;
}

const ACTIVE_WORDS = ['beep', 'tone', 'loud', 'signal', 'ring'];
const QUIET_WORDS = ['quiet', 'calm', 'silence', 'still', 'hush'];
const SAMPLE_RATE = 16_000;

/** Stateless hash of (seed, k) to 32 bits (murmur3's finaliser), so segment k's state needs no history. */
function mix(seed: number, k: number): number {
  let h = (seed ^ Math.imul(k + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

interface Resolved {
  readonly streamId: string;
  readonly seed: number;
  readonly origin: Micros;
  readonly end: Micros;
  readonly segment: Micros;
  readonly label: string;
}

const isActive = (r: Resolved, time: Micros): boolean =>
  (mix(r.seed, Math.floor((time - r.origin) / r.segment)) & 1) === 1;

function* audioEvents(r: Resolved, o: NonNullable<SyntheticOptions['audio']>): Generator<AnySourceEvent> {
  const frameSamples = frameSamplesFor(o.frameMs ?? 20, SAMPLE_RATE);
  const tone = (o.amplitude ?? 0.3) * 32767;
  const noise = (o.noise ?? 0.02) * 32767;
  const w = (2 * Math.PI * (o.toneHz ?? 440)) / SAMPLE_RATE;
  const random = mulberry32(mix(r.seed, 0xa0d10));
  for (let seq = 0, n = 0; ; seq++, n += frameSamples) {
    const time = audioFrameTime(r.origin, n, SAMPLE_RATE);
    if (time >= r.end) return;
    const active = isActive(r, time);
    const samples = new Int16Array(frameSamples);
    for (let i = 0; i < frameSamples; i++) {
      const value = noise * (2 * random() - 1) + (active ? tone * Math.sin(w * (n + i)) : 0);
      samples[i] = Math.max(-32768, Math.min(32767, Math.round(value)));
    }
    yield {
      streamId: r.streamId,
      modality: 'audio',
      time,
      seq,
      payload: { sampleRate: SAMPLE_RATE, channels: 1, samples },
    };
  }
}

/** A bright vertical bar on a dark background that moves only in active segments (red when active in rgb). */
function* videoEvents(r: Resolved, o: NonNullable<SyntheticOptions['video']>): Generator<AnySourceEvent> {
  const width = o.width ?? 64;
  const height = o.height ?? 48;
  const fps = o.fps ?? 10;
  const format = o.format ?? 'gray';
  const random = mulberry32(mix(r.seed, 0x71de0));
  const bar = Math.max(1, Math.floor(width / 8));
  let x = 0;
  for (let seq = 0; ; seq++) {
    const time = r.origin + Math.floor((seq * MICROS_PER_SECOND) / fps);
    if (time >= r.end) return;
    const active = isActive(r, time);
    if (active) x = (x + 2) % width;
    const channels = format === 'rgb' ? 3 : 1;
    const data = new Uint8Array(width * height * channels);
    for (let y = 0; y < height; y++)
      for (let col = 0; col < width; col++) {
        const onBar = (col - x + width) % width < bar;
        const level = (onBar ? 220 : 40) + Math.floor(random() * 9) - 4;
        const p = (y * width + col) * channels;
        if (channels === 1) data[p] = level;
        else {
          data[p] = onBar && active ? level : 40;
          data[p + 1] = onBar ? 40 : level;
          data[p + 2] = onBar && !active ? level : 40;
        }
      }
    yield { streamId: r.streamId, modality: 'video', time, seq, payload: { format, width, height, data } };
  }
}

function* textEvents(r: Resolved, o: NonNullable<SyntheticOptions['text']>): Generator<AnySourceEvent> {
  const every = o.every ?? 500_000;
  const random = mulberry32(mix(r.seed, 0x7e770));
  for (let seq = 0; ; seq++) {
    const time = r.origin + seq * every;
    if (time >= r.end) return;
    const words = isActive(r, time) ? ACTIVE_WORDS : QUIET_WORDS;
    const text = [0, 1, 2].map(() => words[Math.floor(random() * words.length)]).join(' ');
    yield { streamId: r.streamId, modality: 'text', time, seq, payload: { text } };
  }
}

function* labelEvents(r: Resolved): Generator<AnySourceEvent> {
  for (let seq = 0; ; seq++) {
    const time = r.origin + seq * r.segment;
    if (time >= r.end) return;
    yield {
      streamId: r.streamId,
      modality: 'label',
      time,
      seq,
      payload: { labels: { [r.label]: isActive(r, time) ? 1 : 0 } },
    };
  }
}

function resolve(options: SyntheticOptions, origin: Micros): Resolved {
  if (!Number.isSafeInteger(options.duration) || options.duration < 0)
    throw new InvalidOptionError('duration', `must be a non-negative integer of µs, got ${options.duration}`);
  const segment = options.segment ?? MICROS_PER_SECOND;
  if (!Number.isSafeInteger(segment) || segment < 1)
    throw new InvalidOptionError('segment', `must be a positive integer of µs, got ${segment}`);
  if (!Number.isSafeInteger(origin) || origin < 0)
    throw new InvalidOptionError('origin', `must be a non-negative integer of µs, got ${origin}`);
  const video = options.video ?? {};
  for (const [name, value] of [
    ['video.width', video.width],
    ['video.height', video.height],
  ] as const)
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 1 || value > 4096))
      throw new InvalidOptionError(name, `must be an integer in 1..4096, got ${value}`);
  if (video.fps !== undefined && !(video.fps > 0 && video.fps <= 1000))
    throw new InvalidOptionError('video.fps', `must be in (0, 1000], got ${video.fps}`);
  const every = options.text?.every;
  if (every !== undefined && (!Number.isSafeInteger(every) || every < 1))
    throw new InvalidOptionError('text.every', `must be a positive integer of µs, got ${every}`);
  return {
    streamId: options.streamId,
    seed: options.seed >>> 0,
    origin,
    end: origin + options.duration,
    segment,
    label: options.label ?? 'active',
  };
}

/**
 * The events of a synthetic stream in (time, modality) order: 16 kHz tone-or-noise audio, a moving-bar video,
 * words from one of two vocabularies, and a label that says which segments are active — all following the same
 * seeded segment pattern, so a model can learn it. Deterministic: the same options give the same events.
 */
export function* syntheticEvents(
  options: SyntheticOptions,
  origin = options.origin ?? 0,
): Generator<AnySourceEvent> {
  const r = resolve(options, origin);
  const wanted = options.modalities ?? MODALITIES;
  for (const modality of wanted)
    if (!MODALITIES.includes(modality))
      throw new InvalidOptionError('modalities', `unknown modality ${String(modality)}`);
  const generators: Record<Modality, () => Generator<AnySourceEvent>> = {
    audio: () => audioEvents(r, options.audio ?? {}),
    video: () => videoEvents(r, options.video ?? {}),
    text: () => textEvents(r, options.text ?? {}),
    label: () => labelEvents(r),
  };
  // A k-way merge of the per-modality generators, each already in time order.
  const heads = MODALITIES.filter((m) => wanted.includes(m)).map((m) => {
    const generator = generators[m]();
    return { generator, next: generator.next() };
  });
  for (;;) {
    let best: (typeof heads)[number] | undefined;
    for (const head of heads)
      if (
        !head.next.done &&
        (best === undefined || head.next.value.time < (best.next.value as AnySourceEvent).time)
      )
        best = head;
    if (best === undefined) return;
    yield best.next.value as AnySourceEvent;
    best.next = best.generator.next();
  }
}

/** {@link syntheticEvents} as a source, emitted as fast as possible or paced on the wall clock. */
export function syntheticSource(options: SyntheticOptions): Observable<AnySourceEvent> {
  const clock = options.clock ?? wallClockMicros;
  const pace = options.pace ?? 'none';
  if (pace !== 'none' && pace !== 'realtime')
    throw new InvalidOptionError('pace', `must be none or realtime, got ${String(pace)}`);
  resolve(options, options.origin ?? 0);
  return new Observable<AnySourceEvent>((subscriber) => {
    const start = clock();
    const origin = options.origin ?? (pace === 'realtime' ? start : 0);
    const events = syntheticEvents(options, origin);
    if (pace === 'none') {
      for (const event of events) {
        if (subscriber.closed) return;
        subscriber.next(event);
      }
      subscriber.complete();
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    let next = events.next();
    const emitDue = (): void => {
      const now = clock();
      while (!next.done && start + (next.value.time - origin) <= now) {
        subscriber.next(next.value);
        if (subscriber.closed) return;
        next = events.next();
      }
      if (next.done) {
        subscriber.complete();
        return;
      }
      const waitMs = Math.max(0, (start + (next.value.time - origin) - now) / 1000);
      timer = setTimeout(emitDue, waitMs);
    };
    emitDue();
    return () => clearTimeout(timer);
  });
}
