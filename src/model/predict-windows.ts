import { Observable, type OperatorFunction } from 'rxjs';
import { InvalidOptionError } from '../core/errors.js';
import type { Prediction } from '../core/window.js';
import type { FusedWindow, ModelRuntime } from './runtime.js';
import type { DropReason } from './runtime-stats.js';

/** Ends a stream: its state is freed once the windows queued before it have run. */
export interface StreamClose {
  readonly streamId: string;
  readonly close: true;
}

/**
 * A stream's timeline started again (its clock jumped): once the windows queued before it have run, window indices
 * start afresh (later windows may have lower ones) while the recurrent state is kept.
 */
export interface StreamRestart {
  readonly streamId: string;
  readonly restart: true;
}

export type PredictInput = FusedWindow | StreamClose | StreamRestart;
type StreamMarker = StreamClose | StreamRestart;

export interface DroppedWindow {
  readonly streamId: string;
  readonly index: number;
  readonly reason: DropReason;
  readonly message: string;
}

export interface PredictOptions {
  /** Windows queued per stream while steps run; when full the oldest is dropped (counted). Default 32. */
  readonly maxQueue?: number;
  /**
   * Told about every dropped window, for logging; the counters are in runtime.stats either way. If it throws, the
   * output errors with that error.
   */
  readonly onDrop?: (drop: DroppedWindow) => void;
}

const isClose = (item: unknown): item is StreamClose =>
  typeof item === 'object' && item !== null && (item as StreamClose).close === true;
const isRestart = (item: unknown): item is StreamRestart =>
  typeof item === 'object' && item !== null && (item as StreamRestart).restart === true;
const isMarker = (item: unknown): item is StreamMarker => isClose(item) || isRestart(item);

/** Identity of a dropped item for onDrop, read defensively: the item may be anything a producer sent. */
const identity = (item: unknown): { streamId: string; index: number } => {
  const w = (typeof item === 'object' && item !== null ? item : {}) as {
    streamId?: unknown;
    index?: unknown;
  };
  return {
    streamId: typeof w.streamId === 'string' ? w.streamId : String(w.streamId),
    index: typeof w.index === 'number' ? w.index : Number.NaN,
  };
};

/** Below every window index: windows may have negative indices (a stream whose clock starts near 0). */
const NONE = Number.NEGATIVE_INFINITY;

interface StreamQueue {
  readonly items: PredictInput[];
  windows: number;
  /** Index of the newest window accepted since the stream (re)started; later windows must be newer. */
  lastAccepted: number;
}

/** Round-robin order of streams with queued items; each stream at most once. */
class ReadyRing {
  private items: string[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(id: string): void {
    this.items.push(id);
  }

  shift(): string | undefined {
    if (this.head >= this.items.length) return undefined;
    const id = this.items[this.head++];
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return id;
  }
}

/**
 * Runs fused windows through a model runtime: one {@link Prediction} per accepted window, per stream in window
 * order. Windows queue per stream; whenever no step is running, a tick takes the oldest queued window of each
 * waiting stream (round-robin, up to the runtime's maxBatch) and runs one batched step. A bad window (wrong width,
 * non-finite values) or one not newer than the stream's last is dropped and counted, never failing the stream;
 * a full queue drops its oldest window; a new stream's window finding every state slot in use (a GPU's table is
 * finite) is dropped as `no_state_slot`. A failing step (a broken backend) errors the output.
 */
export function predictWindows(
  runtime: ModelRuntime,
  options: PredictOptions = {},
): OperatorFunction<PredictInput, Prediction> {
  const maxQueue = options.maxQueue ?? 32;
  if (!Number.isInteger(maxQueue) || maxQueue < 1)
    throw new InvalidOptionError('maxQueue', `must be an integer ≥ 1, got ${maxQueue}`);
  return (source) =>
    new Observable<Prediction>((subscriber) => {
      const queues = new Map<string, StreamQueue>();
      const ready = new ReadyRing();
      const inFlight = new Map<string, number>();
      let running = false;
      let scheduled: ReturnType<typeof setImmediate> | undefined;
      let sourceDone = false;
      let stopped = false;
      const stats = runtime.stats;

      const drop = (item: unknown, reason: DropReason, message: string): void => {
        stats.dropped[reason]++;
        options.onDrop?.({ ...identity(item), reason, message });
      };

      const queueOf = (streamId: string): StreamQueue => {
        let q = queues.get(streamId);
        if (!q) {
          const last = Math.max(inFlight.get(streamId) ?? NONE, runtime.lastIndex(streamId) ?? NONE);
          q = { items: [], windows: 0, lastAccepted: last };
          queues.set(streamId, q);
        }
        if (q.items.length === 0) ready.push(streamId);
        return q;
      };

      const accept = (item: PredictInput): void => {
        if (isMarker(item)) {
          if (typeof item.streamId !== 'string' || item.streamId === '')
            return drop(item, 'bad_input', 'a close or restart marker needs the streamId of its stream');
          const q = queueOf(item.streamId);
          q.items.push(item);
          q.lastAccepted = NONE;
          return;
        }
        const problem = runtime.checkWindow(item);
        if (problem) return drop(item, 'bad_input', problem);
        const existing = queues.get(item.streamId);
        const last = existing
          ? existing.lastAccepted
          : Math.max(inFlight.get(item.streamId) ?? NONE, runtime.lastIndex(item.streamId) ?? NONE);
        if (item.index <= last)
          return drop(
            item,
            'out_of_order',
            `window ${item.index} is not after window ${last} of "${item.streamId}"`,
          );
        const q = queueOf(item.streamId);
        if (q.windows >= maxQueue) {
          const oldest = q.items.findIndex((i) => !isMarker(i));
          const [old] = q.items.splice(oldest, 1) as [FusedWindow];
          q.windows--;
          stats.queuedWindows--;
          drop(old, 'queue_full', `queue of "${item.streamId}" is full (${maxQueue} windows)`);
        }
        q.items.push(item);
        q.windows++;
        q.lastAccepted = item.index;
        stats.queuedWindows++;
      };

      const schedule = (): void => {
        if (running || scheduled || stopped) return;
        // A macrotask, not a microtask: windows arriving meanwhile join the batch.
        scheduled = setImmediate(tick);
      };

      const finishIfDone = (): void => {
        if (sourceDone && !running && ready.length === 0) subscriber.complete();
      };

      /** One stream's turn: runs its close and restart markers, returns its next window (if any) for the batch. */
      const take = (streamId: string): FusedWindow | undefined => {
        const q = queues.get(streamId);
        if (!q) return undefined;
        let item = q.items.shift();
        while (item && isMarker(item)) {
          if (isClose(item)) runtime.close(streamId);
          else runtime.rewind(streamId);
          item = q.items.shift();
        }
        if (item) {
          q.windows--;
          stats.queuedWindows--;
        }
        if (q.items.length > 0) ready.push(streamId);
        else queues.delete(streamId);
        return item;
      };

      const tick = (): void => {
        scheduled = undefined;
        if (stopped || running) return;
        const batch: FusedWindow[] = [];
        let newStreams = 0;
        // One pass over the streams waiting now, so no stream gets two windows in a batch.
        for (let turns = ready.length; turns > 0 && batch.length < runtime.maxBatch; turns--) {
          const id = ready.shift() as string;
          const w = take(id);
          if (!w) continue;
          if (!runtime.store.has(w.streamId)) {
            // A new stream needs a state slot (finite on a GPU); idle streams give theirs back first.
            if (runtime.store.free - newStreams <= 0) runtime.expireIdle();
            if (runtime.store.free - newStreams <= 0) {
              drop(
                w,
                'no_state_slot',
                `no state slot for "${w.streamId}": all ${runtime.store.slots.capacity} are in use`,
              );
              continue;
            }
            newStreams++;
          }
          batch.push(w);
        }
        if (batch.length === 0) {
          // Only close markers and refused windows this time; what is still queued gets its own tick.
          if (ready.length > 0) schedule();
          else finishIfDone();
          return;
        }
        running = true;
        for (const w of batch) inFlight.set(w.streamId, w.index);
        runtime.step(batch).then(
          (predictions) => {
            running = false;
            inFlight.clear();
            if (stopped) return;
            // A throw here would become an unhandled rejection (the end of a Node process): hand it on instead.
            try {
              for (const p of predictions) subscriber.next(p);
              if (ready.length > 0) schedule();
              else finishIfDone();
            } catch (error) {
              subscriber.error(error);
            }
          },
          (error: unknown) => {
            running = false;
            inFlight.clear();
            subscriber.error(error);
          },
        );
      };

      const subscription = source.subscribe({
        next: (item) => {
          // An exception here (an onDrop callback that throws...) would escape RxJS as an uncaught error on a
          // timer and end the process; it ends this stream instead.
          try {
            accept(item);
            if (ready.length > 0) schedule();
          } catch (error) {
            subscriber.error(error);
          }
        },
        error: (error: unknown) => subscriber.error(error),
        complete: () => {
          sourceDone = true;
          if (ready.length > 0) schedule();
          else finishIfDone();
        },
      });

      return () => {
        stopped = true;
        if (scheduled) clearImmediate(scheduled);
        subscription.unsubscribe();
        stats.queuedWindows -= [...queues.values()].reduce((sum, q) => sum + q.windows, 0);
      };
    });
}
