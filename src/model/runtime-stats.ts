import type { ResetReason } from './state-store.js';

export type DropReason = 'queue_full' | 'out_of_order' | 'bad_input' | 'no_state_slot';

/** A plain copy of the counters, for a metrics exporter or a log line. */
export interface RuntimeStatsSnapshot {
  readonly steps: number;
  readonly windows: number;
  /** Steps per batch size (rows actually used, before any bucket padding). */
  readonly batchSizes: Readonly<Record<number, number>>;
  /** The most recent step latencies in ms, oldest first; a step's latency includes reading results back. */
  readonly stepLatencyMs: readonly number[];
  readonly dropped: Readonly<Record<DropReason, number>>;
  readonly resets: Readonly<Record<ResetReason, number>>;
  readonly expired: number;
  readonly closed: number;
  /** Times the runtime moved to another backend because its GPU failed (see ModelRuntime). */
  readonly failovers: number;
  readonly activeStates: number;
  readonly queuedWindows: number;
}

/** Counters of one runtime, updated by the runtime and by the operator feeding it. */
export class RuntimeStats {
  steps = 0;
  windows = 0;
  expired = 0;
  closed = 0;
  failovers = 0;
  queuedWindows = 0;
  readonly batchSizes = new Map<number, number>();
  readonly dropped: Record<DropReason, number> = {
    queue_full: 0,
    out_of_order: 0,
    bad_input: 0,
    no_state_slot: 0,
  };
  readonly resets: Record<ResetReason, number> = { start: 0, gap: 0, request: 0, device_lost: 0 };
  private readonly latencies: Float64Array;
  private latencyCount = 0;
  readonly #observers = new Set<(ms: number, rows: number) => void>();

  constructor(latencySamples = 1024) {
    this.latencies = new Float64Array(latencySamples);
  }

  /** Hears of every step as it ends (its latency in ms and its rows): for histograms that miss no sample. */
  observeSteps(observer: (ms: number, rows: number) => void): () => void {
    this.#observers.add(observer);
    return () => this.#observers.delete(observer);
  }

  recordStep(rows: number, ms: number): void {
    for (const observer of this.#observers) observer(ms, rows);
    this.steps++;
    this.windows += rows;
    this.batchSizes.set(rows, (this.batchSizes.get(rows) ?? 0) + 1);
    this.latencies[this.latencyCount % this.latencies.length] = ms;
    this.latencyCount++;
  }

  snapshot(activeStates: number): RuntimeStatsSnapshot {
    const n = Math.min(this.latencyCount, this.latencies.length);
    const start = this.latencyCount - n;
    const stepLatencyMs = Array.from(
      { length: n },
      (_, i) => this.latencies[(start + i) % this.latencies.length] as number,
    );
    return {
      steps: this.steps,
      windows: this.windows,
      batchSizes: Object.fromEntries(this.batchSizes),
      stepLatencyMs,
      dropped: { ...this.dropped },
      resets: { ...this.resets },
      expired: this.expired,
      closed: this.closed,
      failovers: this.failovers,
      activeStates,
      queuedWindows: this.queuedWindows,
    };
  }
}
