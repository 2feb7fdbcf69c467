import {
  asyncScheduler,
  Observable,
  type OperatorFunction,
  type SchedulerLike,
  Subject,
  type Subscription,
} from 'rxjs';
import type { Modality, StreamInput } from '../core/events.js';
import type { Window } from '../core/window.js';
import type { AlignOptions } from './options.js';
import { type AlignerStreamState, isRefill } from './stream-state.js';
import { type AlignStats, type LateEvent, type RejectedInput, WindowAligner } from './window-aligner.js';

export interface AlignmentOptions<C> extends AlignOptions<C> {
  /** Clock and timers for idle timeouts (processing time). Default: asyncScheduler; tests pass a TestScheduler. */
  readonly scheduler?: SchedulerLike;
  /**
   * Streams to carry on from saved states (WindowAligner.importStream), opened when the aligner starts; their
   * buffered events come back as inputs marked {@link REFILL}, which go to WindowAligner.refill.
   */
  readonly restore?: readonly AlignerStreamState[];
  /** Around each input the aligner takes (refills included); `after` may read any stream's state. */
  readonly hooks?: AlignHooks;
}

/** What a checkpointing caller sees of the aligner, in its order (after the JPEG decoder, which keeps it per stream). */
export interface AlignHooks {
  before?(input: unknown): void;
  after?(input: unknown, state: (streamId: string) => AlignerStreamState | undefined): void;
}

/**
 * One alignment stage: `align` is the pipeable operator; `late$` and `rejected$` are its side outputs and `stats()`
 * its counters. Each subscription to a piped stream runs its own aligner; the side outputs and stats follow the
 * latest one.
 */
export interface Alignment<C> {
  readonly align: OperatorFunction<StreamInput | unknown, Window<C>>;
  readonly late$: Observable<LateEvent>;
  readonly rejected$: Observable<RejectedInput>;
  /** Ids of streams closed (by a control or the end of input), each after its last window. */
  readonly closed$: Observable<string>;
  /** Ids of streams whose timeline started again (a `restart` control); their window indices start afresh. */
  readonly restarted$: Observable<string>;
  stats(): AlignStats;
  /** Ids of the streams with open state. */
  openStreams(): string[];
  /** See WindowAligner.watermarkLag. */
  watermarkLag(now: number): Partial<Record<Modality, number>>;
}

/**
 * Builds an alignment stage. A `restore`d stream is opened in every aligner the stage starts (each subscription),
 * so a stage with one is meant for one run.
 */
export function createAlignment<C>(options: AlignmentOptions<C>): Alignment<C> {
  const scheduler = options.scheduler ?? asyncScheduler;
  const late$ = new Subject<LateEvent>();
  const rejected$ = new Subject<RejectedInput>();
  const closed$ = new Subject<string>();
  const restarted$ = new Subject<string>();
  // Validate options up front so a bad option fails where the pipeline is built, not at first subscription.
  let current = new WindowAligner(options, { window: () => {}, late: () => {}, rejected: () => {} });

  const align: OperatorFunction<unknown, Window<C>> = (source) =>
    new Observable<Window<C>>((subscriber) => {
      const aligner = new WindowAligner<C>(
        options,
        {
          window: (w) => subscriber.next(w),
          late: (l) => late$.next(l),
          rejected: (r) => rejected$.next(r),
          closed: (id) => closed$.next(id),
          restarted: (id) => restarted$.next(id),
        },
        () => scheduler.now(),
      );
      for (const state of options.restore ?? []) aligner.importStream(state);
      const hooks = options.hooks;
      const stateOf = (streamId: string) => aligner.exportStream(streamId);
      current = aligner;
      let idleTimer: Subscription | undefined;
      let idleDueMs = Number.POSITIVE_INFINITY;
      const idleEnabled = Number.isFinite(aligner.options.idleTimeout);

      // One timer for all streams, re-armed for the earliest moment a source could turn idle; arming per event
      // would cost a timer per frame.
      const armIdle = (dueMs: number): void => {
        if (!Number.isFinite(dueMs) || dueMs >= idleDueMs) return;
        idleTimer?.unsubscribe();
        idleDueMs = dueMs;
        idleTimer = scheduler.schedule(
          () => {
            idleDueMs = Number.POSITIVE_INFINITY;
            idleTimer = undefined;
            try {
              armIdle(aligner.checkIdle());
            } catch (error) {
              subscriber.error(error);
            }
          },
          Math.max(0, dueMs - scheduler.now()),
        );
      };

      const subscription = source.subscribe({
        next: (input) => {
          try {
            hooks?.before?.(input);
            if (isRefill(input)) aligner.refill(input);
            else aligner.push(input);
            hooks?.after?.(input, stateOf);
          } catch (error) {
            subscriber.error(error);
            return;
          }
          if (idleEnabled && idleTimer === undefined)
            armIdle(scheduler.now() + aligner.options.idleTimeout / 1000);
        },
        error: (error) => subscriber.error(error),
        complete: () => {
          try {
            aligner.flushAll();
          } catch (error) {
            subscriber.error(error);
            return;
          }
          subscriber.complete();
        },
      });
      return () => {
        subscription.unsubscribe();
        idleTimer?.unsubscribe();
        idleTimer = undefined;
      };
    });

  return {
    align,
    late$: late$.asObservable(),
    rejected$: rejected$.asObservable(),
    closed$: closed$.asObservable(),
    restarted$: restarted$.asObservable(),
    stats: () => ({
      ...current.stats,
      rejected: { ...current.stats.rejected },
      eventsByModality: { ...current.stats.eventsByModality },
      lateByModality: { ...current.stats.lateByModality },
    }),
    openStreams: () => current.streamIds,
    watermarkLag: (now) => current.watermarkLag(now),
  };
}

/** The alignment operator alone, for pipelines that need no side outputs or counters. */
export function alignWindows<C>(options: AlignmentOptions<C>): OperatorFunction<unknown, Window<C>> {
  return createAlignment(options).align;
}
