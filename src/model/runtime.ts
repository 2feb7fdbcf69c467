import { BraidError, InvalidOptionError } from '../core/errors.js';
import type { Modality } from '../core/events.js';
import { type Logger, silentLogger } from '../core/logger.js';
import { type Micros, seconds, wallClockMicros } from '../core/time.js';
import type { Prediction } from '../core/window.js';
import type { ModelDims } from './config.js';
import { modelDims } from './config.js';
import { FusedStepKernel } from './fused-kernel.js';
import { RuntimeStats, type RuntimeStatsSnapshot } from './runtime-stats.js';
import { type BackendSelection, type SelectBackendOptions, selectBackend } from './select-backend.js';
import { asSlotKernel, GpuStepError, HostSlotKernel, type SlotStepKernel } from './slot-kernel.js';
import { type Lease, type ModelStreamState, type StateSnapshot, StateStore } from './state-store.js';
import type { BackendName, StepKernel } from './step-kernel.js';
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
  /** Some of the window's data was lost on the way (Window.partial). */
  readonly partial?: true;
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
  /** Told, one line each, when the runtime leaves a failed GPU for the CPU and what it carried. Default: nowhere. */
  readonly log?: Logger;
  /** The kernel a failed GPU kernel is replaced with. Default: cpu-fused. */
  readonly fallback?: (model: Model, maxBatch: number) => SlotStepKernel;
}

const positive = (option: string, value: number): number => {
  if (!(value > 0)) throw new InvalidOptionError(option, `must be > 0, got ${value}`);
  return value;
};

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error));

const cpuFused = (model: Model, maxBatch: number): SlotStepKernel =>
  new HostSlotKernel(new FusedStepKernel(model, maxBatch));

/**
 * Runs a model over many streams: the {@link StateStore} gives each stream a slot in the kernel's state table and
 * applies the reset policies, the runtime gathers one window per stream into a batched step on the kernel (inputs
 * and slot numbers in, scores out; the states stay where the kernel keeps them) and turns scores into
 * {@link Prediction}s. Steps must not overlap (the operator in predict-windows.ts serialises them).
 *
 * A GPU kernel that fails (its device lost, a step rejected) is replaced by the fallback (cpu-fused): the states
 * that can be read back move with the streams, the others start again from zeros (counted as `device_lost`
 * resets, and logged), and the failed step runs again there; callers see no error.
 */
export class ModelRuntime {
  readonly dims: ModelDims;
  readonly labels: readonly string[];
  readonly store: StateStore;
  readonly stats: RuntimeStats;
  readonly maxBatch: number;
  private current: SlotStepKernel;
  private readonly clock: () => Micros;
  private readonly log: Logger;
  private readonly fallback: (model: Model, maxBatch: number) => SlotStepKernel;
  private readonly sweepEvery: Micros;
  private lastSweep: Micros;
  private readonly x: Float32Array;
  private readonly slots: Uint32Array;
  private readonly y: Float32Array;
  private busy = false;
  private idle: Promise<void> = Promise.resolve();
  /** A move to the fallback started while no step ran (the device was lost between steps). */
  private moving: Promise<void> | undefined;
  private lostReason: string | undefined;
  private disposed = false;

  constructor(
    private readonly model: Model,
    kernel: StepKernel | SlotStepKernel,
    options: RuntimeOptions = {},
  ) {
    this.dims = modelDims(model.config);
    if (kernel.dims.input !== this.dims.input || kernel.dims.state !== this.dims.state)
      throw new InvalidOptionError('kernel', 'was built for another model');
    this.current = asSlotKernel(kernel);
    this.labels = model.config.labels;
    this.maxBatch = Math.min(positive('maxBatch', options.maxBatch ?? 256), kernel.maxBatch);
    const idleExpiry = positive('idleExpiry', options.idleExpiry ?? seconds(600));
    this.store = new StateStore(
      model.config.cell,
      model.config.hidden,
      { gapReset: positive('gapReset', options.gapReset ?? seconds(5)), idleExpiry },
      this.current.states,
    );
    this.stats = new RuntimeStats(options.latencySamples);
    this.clock = options.clock ?? wallClockMicros;
    this.log = options.log ?? silentLogger;
    this.fallback = options.fallback ?? cpuFused;
    this.sweepEvery = Math.max(1, Math.floor(idleExpiry / 4));
    this.lastSweep = this.clock();
    const { input, labels } = this.dims;
    this.x = new Float32Array(this.maxBatch * input);
    this.slots = new Uint32Array(this.maxBatch);
    this.y = new Float32Array(this.maxBatch * labels);
    this.watch(this.current);
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

  /** The kernel running the steps now (it changes if a GPU kernel fails). */
  get kernel(): SlotStepKernel {
    return this.current;
  }

  get backend(): BackendName {
    return this.current.backend;
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
   * come back in the same order. Rejects with BRAID_ERR_MODEL when the windows' new streams need more state slots
   * than are free (the operator checks {@link StateStore.free} first), and when the kernel fails on the CPU (naming
   * the backend, the kernel's own error as cause); a failing GPU kernel is replaced instead (see the class).
   */
  async step(windows: readonly FusedWindow[]): Promise<Prediction[]> {
    const n = windows.length;
    if (n === 0) return [];
    if (n > this.maxBatch)
      throw new BraidError('BRAID_ERR_MODEL', `step of ${n} windows exceeds maxBatch ${this.maxBatch}`);
    if (this.busy)
      throw new BraidError('BRAID_ERR_MODEL', 'ModelRuntime.step called while a step is running');
    this.busy = true;
    let finished = (): void => {};
    this.idle = new Promise((resolve) => {
      finished = resolve;
    });
    try {
      if (this.moving) await this.moving;
      if (this.lostReason) await this.moveToFallback(`its device was lost (${this.lostReason})`);
      const { input: F, labels: L } = this.dims;
      const now = this.clock();
      const seen = new Set<string>();
      let fresh = 0;
      for (const w of windows) {
        if (seen.has(w.streamId))
          throw new BraidError('BRAID_ERR_MODEL', `stream "${w.streamId}" has two windows in one step`);
        seen.add(w.streamId);
        if (!this.store.has(w.streamId)) fresh++;
      }
      if (fresh > this.store.free) this.expireIdle(now);
      if (fresh > this.store.free)
        throw new BraidError(
          'BRAID_ERR_MODEL',
          `${fresh} new streams in one step, but only ${this.store.free} of ${this.store.slots.capacity} state slots are free`,
        );
      const leases: Lease[] = [];
      for (let i = 0; i < n; i++) {
        const w = windows[i] as FusedWindow;
        const lease = this.store.acquire(w.streamId, w.start, now);
        if (lease.reset) this.stats.resets[lease.reset]++;
        leases.push(lease);
        this.x.set(w.x, i * F);
      }
      const t0 = performance.now();
      await this.runKernel(leases);
      this.stats.recordStep(n, performance.now() - t0);
      const done = this.clock();
      const predictions: Prediction[] = [];
      for (let i = 0; i < n; i++) {
        const w = windows[i] as FusedWindow;
        this.store.commit(leases[i] as Lease, w.index, w.end, done);
        const scores: Record<string, number> = {};
        for (let j = 0; j < L; j++) scores[this.labels[j] as string] = this.y[i * L + j] as number;
        predictions.push({
          streamId: w.streamId,
          windowIndex: w.index,
          windowStart: w.start,
          windowEnd: w.end,
          scores,
          present: w.present,
          ...(w.partial && { partial: true as const }),
        });
      }
      if (done - this.lastSweep >= this.sweepEvery) this.expireIdle(done);
      return predictions;
    } finally {
      this.busy = false;
      // The device went away while this step ran (and the step still got its scores): move now, not at the next step.
      if (this.lostReason) this.moveWhileIdle(this.lostReason);
      finished();
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

  /** Every stream's state, after the step running now (read back from the GPU for webgpu). */
  async snapshot(): Promise<StateSnapshot> {
    while (this.busy || this.moving) await (this.busy ? this.idle : this.moving);
    return this.store.snapshot();
  }

  /**
   * One stream's state after the steps started so far (see {@link StateStore.exportStream}), or undefined when it has
   * none. Called as a prediction comes out, it is the state right after that window: no step runs between a step's
   * end and its predictions.
   */
  exportStream(streamId: string): Promise<ModelStreamState> | undefined {
    return this.store.exportStream(streamId);
  }

  /** Gives one stream a saved state (see {@link StateStore.importStream}); refused while a step runs. */
  importStream(streamId: string, saved: ModelStreamState): void {
    if (this.busy || this.moving)
      throw new BraidError('BRAID_ERR_MODEL', 'cannot import a state while a step is running');
    this.store.importStream(streamId, saved, this.clock());
  }

  /** Replaces every state with a snapshot's (see {@link StateStore.restore}); refused while a step runs. */
  restore(snapshot: unknown): void {
    if (this.busy || this.moving)
      throw new BraidError('BRAID_ERR_MODEL', 'cannot restore states while a step is running');
    this.store.restore(snapshot, this.clock());
  }

  statsSnapshot(): RuntimeStatsSnapshot {
    return this.stats.snapshot(this.store.size);
  }

  dispose(): void {
    this.disposed = true;
    this.current.dispose();
  }

  /** Runs the leased rows on the kernel; a GPU that fails is replaced and the rows run again on its replacement. */
  private async runKernel(leases: readonly Lease[]): Promise<void> {
    const n = leases.length;
    const kernel = this.current;
    for (let i = 0; i < n; i++) this.slots[i] = this.store.slotOf(leases[i] as Lease);
    try {
      await kernel.step(n, this.x, this.slots, this.y);
      return;
    } catch (error) {
      const deviceFailed = error instanceof GpuStepError || !(error instanceof BraidError);
      if (kernel.device !== 'gpu' || !deviceFailed) throw this.stepError(kernel, error);
      // The rows' own states are not trusted when the step may have run: it may have advanced them already.
      const ran = !(error instanceof GpuStepError) || error.ran;
      const distrust = ran ? new Set(leases.map((l) => l.entry.streamId)) : new Set<string>();
      await this.moveToFallback(`its step failed: ${errorText(error)}`, distrust);
    }
    for (let i = 0; i < n; i++) this.slots[i] = this.store.slotOf(leases[i] as Lease);
    try {
      await this.current.step(n, this.x, this.slots, this.y);
    } catch (error) {
      throw this.stepError(this.current, error);
    }
  }

  private stepError(kernel: SlotStepKernel, error: unknown): BraidError {
    if (error instanceof BraidError) return error;
    return new BraidError('BRAID_ERR_MODEL', `${kernel.backend} step failed: ${errorText(error)}`, {
      cause: error,
    });
  }

  /** Moves every stream's state to the fallback kernel and steps there from now on. */
  private async moveToFallback(reason: string, distrust: ReadonlySet<string> = new Set()): Promise<void> {
    const from = this.current;
    const to = this.fallback(this.model, this.maxBatch);
    const { carried, lost } = await this.store.moveTo(to.states, distrust);
    this.current = to;
    this.lostReason = undefined;
    this.watch(to);
    try {
      from.dispose();
    } catch {
      // A lost device's buffers may refuse to be destroyed; they are gone with it either way.
    }
    this.stats.failovers++;
    this.stats.resets.device_lost += lost.length;
    const named = lost.slice(0, 5).join(', ') + (lost.length > 5 ? ', ...' : '');
    // One line: WebGPU's validation messages span several.
    const why = reason.replace(/\s*\n\s*/g, ' ').trim();
    this.log.warn(
      {
        event: 'backend_failover',
        from: from.backend,
        to: to.backend,
        carried,
        lost: lost.length,
        reason: why,
      },
      `model backend ${from.backend} failed, ${why}; moved to ${to.backend}, carrying ${carried} stream state(s)` +
        (lost.length > 0 ? `; ${lost.length} could not be read back and start from zeros (${named})` : ''),
    );
  }

  private watch(kernel: SlotStepKernel): void {
    void kernel.lost?.then((reason) => {
      if (this.disposed || this.current !== kernel) return;
      this.lostReason = reason;
      this.log.warn(
        { event: 'device_lost', backend: kernel.backend, reason },
        `model backend ${kernel.backend}: device lost (${reason}); moving the streams to the CPU`,
      );
      // Between steps the move starts now; during one, the step (failing, or at its end) does it.
      if (!this.busy) this.moveWhileIdle(reason);
    });
  }

  private moveWhileIdle(reason: string): void {
    if (this.moving) return;
    this.moving = this.moveToFallback(`its device was lost (${reason})`)
      .catch((error: unknown) =>
        this.log.error(
          { event: 'failover_failed', error: errorText(error) },
          `could not move the streams to the CPU: ${errorText(error)}`,
        ),
      )
      .finally(() => {
        this.moving = undefined;
      });
  }
}
