import type { Observable, Subscription } from 'rxjs';
import type { StreamInput } from '../core/events.js';
import type { RefusalListener } from '../core/refusal.js';
import type { Prediction } from '../core/window.js';
import type { StreamMark } from '../pipeline/stream-lifecycle.js';
import type { PredictionPipeline } from './pipeline.js';

export interface SupervisorHandlers {
  prediction(prediction: Prediction): void;
  refused?: RefusalListener;
  /** Every model step as it ends (latency ms, rows). */
  step?: (ms: number, rows: number) => void;
  /** A stream opened or, after its last prediction, ended. */
  stream?: (mark: StreamMark) => void;
  /** The pipeline failed; it is started again after `restartInMs` with fresh state. */
  failed(error: unknown, restartInMs: number): void;
}

export interface SupervisorTimers {
  now(): number;
  setTimeout(fn: () => void, ms: number): { cancel(): void };
}

export interface BackoffOptions {
  /** Delay before the first restart (ms). Default 100. */
  readonly initialMs?: number;
  /** Longest delay between restarts (ms). Default 30 s. */
  readonly maxMs?: number;
  /** A run that lasted this long (ms) counts as healthy: the next failure starts from `initialMs` again. */
  readonly stableMs?: number;
}

const realTimers: SupervisorTimers = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

/**
 * Keeps a prediction pipeline running: a failed run is reported and restarted with fresh state after an exponential
 * backoff (doubling from `initialMs` up to `maxMs`), so a pipeline that fails at once on every start does not spin,
 * while one that fails now and then restarts within a tenth of a second.
 */
export class PipelineSupervisor {
  readonly #pipeline: PredictionPipeline;
  readonly #input$: Observable<StreamInput>;
  readonly #handlers: SupervisorHandlers;
  readonly #timers: SupervisorTimers;
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #stableMs: number;
  #subscription: Subscription | undefined;
  #restart: { cancel(): void } | undefined;
  #failures = 0;
  #startedAt = 0;
  #stopped = false;
  restarts = 0;

  constructor(
    pipeline: PredictionPipeline,
    input$: Observable<StreamInput>,
    handlers: SupervisorHandlers,
    backoff: BackoffOptions = {},
    timers: SupervisorTimers = realTimers,
  ) {
    this.#pipeline = pipeline;
    this.#input$ = input$;
    this.#handlers = handlers;
    this.#timers = timers;
    this.#initialMs = backoff.initialMs ?? 100;
    this.#maxMs = backoff.maxMs ?? 30_000;
    this.#stableMs = backoff.stableMs ?? 10_000;
  }

  start(): void {
    if (this.#stopped) return;
    this.#startedAt = this.#timers.now();
    this.#subscription = this.#pipeline
      .run(this.#input$, {
        refused: this.#handlers.refused,
        step: this.#handlers.step,
        onStream: this.#handlers.stream,
      })
      .subscribe({ next: (p) => this.#handlers.prediction(p), error: (e: unknown) => this.#failed(e) });
  }

  stop(): void {
    this.#stopped = true;
    this.#restart?.cancel();
    this.#subscription?.unsubscribe();
  }

  #failed(error: unknown): void {
    if (this.#timers.now() - this.#startedAt >= this.#stableMs) this.#failures = 0;
    this.#failures++;
    const delay = Math.min(this.#maxMs, this.#initialMs * 2 ** (this.#failures - 1));
    this.restarts++;
    this.#handlers.failed(error, delay);
    if (this.#stopped) return;
    this.#restart = this.#timers.setTimeout(() => {
      this.#restart = undefined;
      this.start();
    }, delay);
  }
}
