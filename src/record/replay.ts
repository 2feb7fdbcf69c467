import { asyncScheduler, Observable, type SchedulerLike, type Subscription } from 'rxjs';
import { InvalidOptionError } from '../core/errors.js';
import type { AnySourceEvent } from '../core/events.js';
import type { Micros } from '../core/time.js';
import { type ReadOptions, RecordingReader } from './recording-reader.js';

export interface ReplayOptions extends ReadOptions {
  /** 1 = real time, 4 = four times faster, 'max' = as fast as the consumer takes them (default 1). */
  readonly speed?: number | 'max';
  /** Start again at the end, forever: see {@link LoopShift} for how times and seqs keep increasing. */
  readonly loop?: boolean;
  /** µs added between the last event of one loop and the first of the next (default 100 ms): pass the window hop. */
  readonly loopGap?: Micros;
  /** Clock and timers for pacing (default asyncScheduler); it must run actions asynchronously (no virtual time). */
  readonly scheduler?: SchedulerLike;
}

const DEFAULT_LOOP_GAP: Micros = 100_000;
/** At 'max' speed, give the event loop a turn after this much uninterrupted work (ms). */
const MAX_SPEED_SLICE_MS = 10;

function checkOptions(options: ReplayOptions): void {
  const { speed = 1, loopGap } = options;
  if (speed !== 'max' && (typeof speed !== 'number' || !Number.isFinite(speed) || speed <= 0))
    throw new InvalidOptionError('speed', `must be a positive number or 'max', got ${String(speed)}`);
  if (loopGap !== undefined && (!Number.isSafeInteger(loopGap) || loopGap < 1))
    throw new InvalidOptionError('loopGap', `must be whole µs >= 1, got ${loopGap}`);
}

/**
 * Shifts the events of loop k so a looped replay looks like one long recording: time += k × period, where period
 * = (last − first event time of one pass) + loopGap, and seq += k × (seqs one pass spans, per stream × modality).
 */
class LoopShift {
  #first: Micros | undefined;
  #last: Micros | undefined;
  readonly #seqs = new Map<string, { min: number; max: number }>();

  constructor(private readonly gap: Micros) {}

  /** Learns from loop 0's events; later loops only read what it learned. */
  observe(event: AnySourceEvent): void {
    this.#first ??= event.time;
    this.#last = Math.max(this.#last ?? event.time, event.time);
    const key = `${event.streamId}\u0000${event.modality}`;
    const span = this.#seqs.get(key);
    if (!span) this.#seqs.set(key, { min: event.seq, max: event.seq });
    else {
      span.min = Math.min(span.min, event.seq);
      span.max = Math.max(span.max, event.seq);
    }
  }

  apply(event: AnySourceEvent, loop: number): AnySourceEvent {
    if (loop === 0) return event;
    const period = this.#last! - this.#first! + this.gap;
    const span = this.#seqs.get(`${event.streamId}\u0000${event.modality}`)!;
    return { ...event, time: event.time + loop * period, seq: event.seq + loop * (span.max - span.min + 1) };
  }
}

/** Holds each event back until its originating time, scaled by `speed`, has elapsed on the scheduler's clock. */
class Pacer {
  #origin: { time: Micros; clock: number } | undefined;
  #sliceStart = performance.now();
  #timer: Subscription | undefined;
  #wake: (() => void) | undefined;

  constructor(
    private readonly speed: number | 'max',
    private readonly scheduler: SchedulerLike,
  ) {}

  async wait(time: Micros): Promise<void> {
    if (this.speed === 'max') return this.#breathe();
    if (!this.#origin) {
      this.#origin = { time, clock: this.scheduler.now() };
      return;
    }
    // Absolute targets from one origin, so timer lateness never accumulates into drift.
    const due = this.#origin.clock + (time - this.#origin.time) / 1000 / this.speed;
    const delay = due - this.scheduler.now();
    if (delay < 1) return;
    await new Promise<void>((resolve) => {
      this.#wake = resolve;
      this.#timer = this.scheduler.schedule(resolve, delay);
    });
  }

  /** Releases a pending wait at once (unsubscribe). */
  cancel(): void {
    this.#timer?.unsubscribe();
    this.#wake?.();
  }

  async #breathe(): Promise<void> {
    if (performance.now() - this.#sliceStart < MAX_SPEED_SLICE_MS) return;
    await new Promise((resolve) => setImmediate(resolve));
    this.#sliceStart = performance.now();
  }
}

/**
 * Replays a recording as a stream of source events in (time, channel, seq) order, paced by originating time.
 * Options are checked at once (InvalidOptionError); reading problems arrive as the stream's error
 * (RecordingError), warnings through `onWarning`. Unsubscribing stops reading and closes the file.
 */
export function replayRecording(path: string, options: ReplayOptions = {}): Observable<AnySourceEvent> {
  checkOptions(options);
  return new Observable<AnySourceEvent>((subscriber) => {
    const pacer = new Pacer(options.speed ?? 1, options.scheduler ?? asyncScheduler);
    const shift = new LoopShift(options.loopGap ?? DEFAULT_LOOP_GAP);
    let stopped = false;
    const play = async (): Promise<void> => {
      const reader = await RecordingReader.open(path, options);
      try {
        for (let loop = 0; !stopped; loop += 1) {
          let played = 0;
          for await (const event of reader.events(options)) {
            if (loop === 0) shift.observe(event);
            const out = shift.apply(event, loop);
            await pacer.wait(out.time);
            if (stopped) return;
            subscriber.next(out);
            played += 1;
          }
          if (!options.loop || played === 0) return;
        }
      } finally {
        await reader.close();
      }
    };
    play().then(
      () => subscriber.complete(),
      (error: unknown) => subscriber.error(error),
    );
    return () => {
      stopped = true;
      pacer.cancel();
    };
  });
}
