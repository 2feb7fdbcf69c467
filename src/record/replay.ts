import { asyncScheduler, Observable, type SchedulerLike, type Subscription } from 'rxjs';
import { InvalidOptionError } from '../core/errors.js';
import type { AnySourceEvent, Modality, StreamInput } from '../core/events.js';
import type { FlowCredit } from '../core/flow-credit.js';
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
  /**
   * Credits of the stages the replay feeds (see FlowCredit): before each item the reader waits until they have room,
   * so decoding and the model never fall behind far enough to drop anything, whatever the speed.
   */
  readonly credit?: FlowCredit;
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

  /** A time of loop 0 as it reads in loop `loop`. */
  time(time: Micros, loop: number): Micros {
    return loop === 0 ? time : time + loop * (this.#last! - this.#first! + this.gap);
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
  #sinceCheck = 0;
  #timer: Subscription | undefined;
  #wake: (() => void) | undefined;

  constructor(
    private readonly speed: number | 'max',
    private readonly scheduler: SchedulerLike,
  ) {}

  /** Undefined when `time` is due already (no await needed: most events at high speed), else when it will be. */
  wait(time: Micros): Promise<void> | undefined {
    if (this.speed === 'max') return this.#breathe();
    if (!this.#origin) {
      this.#origin = { time, clock: this.scheduler.now() };
      return undefined;
    }
    // Absolute targets from one origin, so timer lateness never accumulates into drift.
    const due = this.#origin.clock + (time - this.#origin.time) / 1000 / this.speed;
    if (due - this.scheduler.now() < 1) return undefined;
    return new Promise<void>((resolve) => {
      this.#wake = resolve;
      // Timers may fire a little early (whole-ms clocks, rounding): look again, and wait again if it is not due.
      const arm = () => {
        const left = due - this.scheduler.now();
        if (left < 1) resolve();
        else this.#timer = this.scheduler.schedule(arm, left);
      };
      arm();
    });
  }

  /** Releases a pending wait at once (unsubscribe). */
  cancel(): void {
    this.#timer?.unsubscribe();
    this.#wake?.();
  }

  #breathe(): Promise<void> | undefined {
    // The clock is read every 32nd event only: reading it costs about as much as handing an event on.
    if ((++this.#sinceCheck & 31) !== 0 || performance.now() - this.#sliceStart < MAX_SPEED_SLICE_MS)
      return undefined;
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        this.#sliceStart = performance.now();
        resolve();
      }),
    );
  }
}

/** Streams open in the current pass of a replay, by the time after which they have no more events. */
class OpenStreams {
  /** Sorted by end, earliest first. */
  readonly #byEnd: { streamId: string; end: Micros }[] = [];
  readonly #open = new Set<string>();

  has(streamId: string): boolean {
    return this.#open.has(streamId);
  }

  add(streamId: string, end: Micros): void {
    this.#open.add(streamId);
    let i = this.#byEnd.length;
    while (i > 0 && (this.#byEnd[i - 1] as { end: Micros }).end > end) i -= 1;
    this.#byEnd.splice(i, 0, { streamId, end });
  }

  /** Whether some stream's last event is before `time` (cheap: the earliest end is first). */
  closesBefore(time: Micros): boolean {
    return this.#byEnd.length > 0 && (this.#byEnd[0] as { end: Micros }).end < time;
  }

  /** Removes and returns the streams whose last event is before `time`; all of them without a time. */
  closeBefore(time?: Micros): string[] {
    let n = 0;
    while (n < this.#byEnd.length && (time === undefined || (this.#byEnd[n] as { end: Micros }).end < time))
      n += 1;
    const done = this.#byEnd.splice(0, n).map((s) => s.streamId);
    for (const id of done) this.#open.delete(id);
    return done;
  }
}

function replay(path: string, options: ReplayOptions, controls: boolean): Observable<StreamInput> {
  checkOptions(options);
  return new Observable<StreamInput>((subscriber) => {
    const pacer = new Pacer(options.speed ?? 1, options.scheduler ?? asyncScheduler);
    const shift = new LoopShift(options.loopGap ?? DEFAULT_LOOP_GAP);
    let stopped = false;
    // Each step awaits only when it must (a credit to wait for, a due time to reach): at high speed most events
    // need neither, and one await per event would cost more than reading it.
    const emit = (input: StreamInput): Promise<void> | undefined => {
      const room = options.credit?.ready();
      if (!room) {
        if (!stopped) subscriber.next(input);
        return undefined;
      }
      return room.then(() => {
        if (!stopped) subscriber.next(input);
      });
    };
    const play = async (): Promise<void> => {
      const reader = await RecordingReader.open(path, options);
      try {
        const modalities = new Map<string, readonly Modality[]>(
          reader.info.streams.map((s) => [s.streamId, s.modalities]),
        );
        const ends = controls ? reader.streamEnds() : new Map<string, Micros>();
        for (let loop = 0; !stopped; loop += 1) {
          let played = 0;
          const open = new OpenStreams();
          const closeStreams = async (time?: Micros) => {
            for (const streamId of open.closeBefore(time)) await emit({ control: 'close', streamId });
          };
          for await (const batch of reader.eventBatches(options)) {
            for (const event of batch) {
              if (loop === 0 && options.loop) shift.observe(event);
              const out = shift.apply(event, loop);
              if (controls) {
                if (open.closesBefore(out.time)) await closeStreams(out.time);
                if (!open.has(out.streamId)) {
                  open.add(out.streamId, shift.time(ends.get(out.streamId) ?? out.time, loop));
                  const opening = emit({
                    control: 'open',
                    streamId: out.streamId,
                    modalities: modalities.get(out.streamId) ?? [out.modality],
                  });
                  if (opening) await opening;
                }
              }
              const due = pacer.wait(out.time);
              if (due) await due;
              if (stopped) return;
              const sent = emit(out);
              if (sent) await sent;
              played += 1;
            }
            if (stopped) return;
          }
          if (controls) await closeStreams();
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

/**
 * Replays a recording as a stream of source events in (time, channel, seq) order, paced by originating time.
 * Options are checked at once (InvalidOptionError); reading problems arrive as the stream's error
 * (RecordingError), warnings through `onWarning`. Unsubscribing stops reading and closes the file.
 */
export function replayRecording(path: string, options: ReplayOptions = {}): Observable<AnySourceEvent> {
  return replay(path, options, false) as Observable<AnySourceEvent>;
}

/**
 * The replay as a producer would send it: each stream's events preceded by an `open` control naming the modalities
 * it has in the file, and followed by a `close` once the reader is past the stream's last event (or at the end of
 * the range, or of each pass when looping). So a stream that has ended, or has no events in `from`/`to`, holds
 * nothing back downstream, and each pass of a loop starts every stream afresh, as the recorded session did.
 */
export function replayInputs(path: string, options: ReplayOptions = {}): Observable<StreamInput> {
  return replay(path, options, true);
}
