import { BraidError, InvalidOptionError } from '../core/errors.js';
import type { Modality } from '../core/events.js';
import { type Micros, seconds, wallClockMicros } from '../core/time.js';
import type { Prediction } from '../core/window.js';
import type { ModelDims } from './config.js';
import { modelDims } from './config.js';
import { RuntimeStats, type RuntimeStatsSnapshot } from './runtime-stats.js';
import { type BackendSelection, type SelectBackendOptions, selectBackend } from './select-backend.js';
import { type Lease, type StateSnapshot, StateStore } from './state-store.js';
import type { StepKernel } from './step-kernel.js';
import type { Model } from './weights.js';

/** One window's fused input vector (built by the features stage) with the window's identity. */
export interface FusedWindow {
  readonly streamId: string;
  readonly index: number;
  readonly start: Micros;
  readonly end: Micros;
  /** [audio | video | text | presence mask], length = the model's fused input width. */
  readonly x: Float32Array;
  readonly present: Readonly<Record<Modality, boolean>>;
}

export interface RuntimeOptions {
  /** Most windows in one step. Default 256. */
  readonly maxBatch?: number;
  /** Event-time gap (µs) between a window's start and the previous window's end that resets the state. Default 5 s. */
  readonly gapReset?: Micros;
  /**
   * Wall-clock inactivity (µs) after which a stream's state is forgotten. Default 10 minutes. Must be at least
   * `gapReset`: expiry follows the wall clock, so only gaps shorter than it give the same results live and in a
   * fast replay (see docs/model-runtime.md).
   */
  readonly idleExpiry?: Micros;
  /** Wall clock in µs, for expiry only; injectable for tests. */
  readonly clock?: () => Micros;
  /** Step latencies kept for {@link RuntimeStatsSnapshot.stepLatencyMs}. Default 1024. */
  readonly latencySamples?: number;
}

const positive = (option: string, value: number): number => {
  if (!(value > 0)) throw new InvalidOptionError(option, `must be > 0, got ${value}`);
  return value;
};

/**
 * Runs a model over many streams: keeps each stream's recurrent state, gathers one window per stream into a
 * batched step on the kernel, scatters the new states back and turns scores into {@link Prediction}s.
 * Steps must not overlap (the operator in predict-windows.ts serialises them).
 */
export class ModelRuntime {
  readonly dims: ModelDims;
  readonly labels: readonly string[];
  readonly store: StateStore;
  readonly stats: RuntimeStats;
  readonly maxBatch: number;
  private readonly clock: () => Micros;
  private readonly sweepEvery: Micros;
  private lastSweep: Micros;
  private readonly x: Float32Array;
  private readonly state: Float32Array;
  private readonly y: Float32Array;
  private readonly next: Float32Array;
  private busy = false;

  constructor(
    model: Model,
    readonly kernel: StepKernel,
    options: RuntimeOptions = {},
  ) {
    this.dims = modelDims(model.config);
    if (kernel.dims.input !== this.dims.input || kernel.dims.state !== this.dims.state)
      throw new InvalidOptionError('kernel', 'was built for another model');
    this.labels = model.config.labels;
    this.maxBatch = Math.min(positive('maxBatch', options.maxBatch ?? 256), kernel.maxBatch);
    const idleExpiry = positive('idleExpiry', options.idleExpiry ?? seconds(600));
    this.store = new StateStore(model.config.cell, model.config.hidden, {
      gapReset: positive('gapReset', options.gapReset ?? seconds(5)),
      idleExpiry,
    });
    this.stats = new RuntimeStats(options.latencySamples);
    this.clock = options.clock ?? wallClockMicros;
    this.sweepEvery = Math.max(1, Math.floor(idleExpiry / 4));
    this.lastSweep = this.clock();
    const { input, state, labels } = this.dims;
    this.x = new Float32Array(this.maxBatch * input);
    this.state = new Float32Array(this.maxBatch * state);
    this.y = new Float32Array(this.maxBatch * labels);
    this.next = new Float32Array(this.maxBatch * state);
  }

  /** Builds the kernel (auto-selected unless a backend is named) and the runtime; the selection is for the log. */
  static async create(
    model: Model,
    options: RuntimeOptions & Omit<SelectBackendOptions, 'maxBatch'> = {},
  ): Promise<{ runtime: ModelRuntime; selection: BackendSelection }> {
    const maxBatch = options.maxBatch ?? 256;
    const selection = await selectBackend(model, { ...options, maxBatch });
    return { runtime: new ModelRuntime(model, selection.kernel, options), selection };
  }

  /** Why a window cannot be run (wrong vector width, non-finite values, bad times), or undefined when it can. */
  checkWindow(w: FusedWindow): string | undefined {
    if (typeof w !== 'object' || w === null) return `a window must be an object, got ${String(w)}`;
    if (typeof w.streamId !== 'string' || w.streamId.length === 0)
      return 'streamId must be a non-empty string';
    if (!Number.isSafeInteger(w.index)) return `index must be an integer, got ${w.index}`;
    if (!Number.isSafeInteger(w.start) || !Number.isSafeInteger(w.end) || w.end <= w.start)
      return `window times must be integer µs with end > start, got [${w.start}, ${w.end})`;
    if (!(w.x instanceof Float32Array)) return 'x must be a Float32Array';
    if (w.x.length !== this.dims.input)
      return `x must have the model's ${this.dims.input} fused inputs, got ${w.x.length}`;
    for (let i = 0; i < w.x.length; i++)
      if (!Number.isFinite(w.x[i])) return `x[${i}] is ${w.x[i]}; features must be finite`;
    return undefined;
  }

  /** Index of the last window run for a stream, if it has state. */
  lastIndex(streamId: string): number | undefined {
    return this.store.lastIndex(streamId);
  }

  /**
   * One batched step over windows of distinct streams (checked with {@link checkWindow} by the caller). Predictions
   * come back in the same order. A failing kernel rejects with BRAID_ERR_MODEL naming the backend (cause: the
   * kernel's own error).
   */
  async step(windows: readonly FusedWindow[]): Promise<Prediction[]> {
    const n = windows.length;
    if (n === 0) return [];
    if (n > this.maxBatch)
      throw new BraidError('BRAID_ERR_MODEL', `step of ${n} windows exceeds maxBatch ${this.maxBatch}`);
    if (this.busy)
      throw new BraidError('BRAID_ERR_MODEL', 'ModelRuntime.step called while a step is running');
    this.busy = true;
    try {
      const { input: F, state: S, labels: L } = this.dims;
      const now = this.clock();
      const leases: Lease[] = [];
      const seen = new Set<string>();
      for (let i = 0; i < n; i++) {
        const w = windows[i] as FusedWindow;
        if (seen.has(w.streamId))
          throw new BraidError('BRAID_ERR_MODEL', `stream "${w.streamId}" has two windows in one step`);
        seen.add(w.streamId);
        const lease = this.store.acquire(w.streamId, w.start, now);
        if (lease.reset) this.stats.resets[lease.reset]++;
        leases.push(lease);
        this.x.set(w.x, i * F);
        this.state.set(lease.entry.state, i * S);
      }
      const t0 = performance.now();
      try {
        await this.kernel.step(n, this.x, this.state, this.y, this.next);
      } catch (error) {
        if (error instanceof BraidError) throw error;
        const why = error instanceof Error ? error.message : String(error);
        throw new BraidError('BRAID_ERR_MODEL', `${this.kernel.backend} step failed: ${why}`, {
          cause: error,
        });
      }
      this.stats.recordStep(n, performance.now() - t0);
      const done = this.clock();
      const predictions: Prediction[] = [];
      for (let i = 0; i < n; i++) {
        const w = windows[i] as FusedWindow;
        this.store.commit(leases[i] as Lease, this.next.subarray(i * S, (i + 1) * S), w.index, w.end, done);
        const scores: Record<string, number> = {};
        for (let j = 0; j < L; j++) scores[this.labels[j] as string] = this.y[i * L + j] as number;
        predictions.push({
          streamId: w.streamId,
          windowIndex: w.index,
          windowStart: w.start,
          windowEnd: w.end,
          scores,
          present: w.present,
        });
      }
      if (done - this.lastSweep >= this.sweepEvery) this.expireIdle(done);
      return predictions;
    } finally {
      this.busy = false;
    }
  }

  /** Zeroes a stream's state on request (the next window starts fresh). */
  reset(streamId: string): boolean {
    const done = this.store.reset(streamId);
    if (done) this.stats.resets.request++;
    return done;
  }

  /** Forgets a stream's window index (its timeline started again) but keeps its state. */
  rewind(streamId: string): boolean {
    return this.store.rewind(streamId);
  }

  /** Frees a stream's state: it ended. */
  close(streamId: string): boolean {
    const done = this.store.delete(streamId);
    if (done) this.stats.closed++;
    return done;
  }

  /** Forgets streams idle past the expiry (also done during steps); returns their ids. */
  expireIdle(now: Micros = this.clock()): string[] {
    this.lastSweep = now;
    const expired = this.store.expireIdle(now);
    this.stats.expired += expired.length;
    return expired;
  }

  snapshot(): StateSnapshot {
    return this.store.snapshot();
  }

  restore(snapshot: unknown): void {
    this.store.restore(snapshot, this.clock());
  }

  statsSnapshot(): RuntimeStatsSnapshot {
    return this.stats.snapshot(this.store.size);
  }

  dispose(): void {
    this.kernel.dispose();
  }
}
