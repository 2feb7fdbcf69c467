import { Observable, tap } from 'rxjs';
import type { AlignOptions } from '../align/options.js';
import { describeWindowing, modelWindowing, type WindowingConfig } from '../align/windowing.js';
import { isStreamControl, type StreamInput } from '../core/events.js';
import type { FlowCredit } from '../core/flow-credit.js';
import type { Prediction } from '../core/window.js';
import { type FeatureConfig, parseFeatureConfig } from '../features/config.js';
import { type PredictInput, predictWindows } from '../model/predict-windows.js';
import { ModelRuntime, type RuntimeOptions } from '../model/runtime.js';
import { type BackendSelection, selectBackend } from '../model/select-backend.js';
import type { BackendName } from '../model/step-kernel.js';
import type { Model } from '../model/weights.js';
import { createFeatureStage } from './feature-stage.js';
import { StreamLifecycle, type StreamMark } from './stream-lifecycle.js';

// The windowing lives in src/align/windowing.ts; re-exported here for code that imported it from the pipeline.
export { DEFAULT_WINDOWING, type WindowingConfig } from '../align/windowing.js';

export interface PipelineOptions {
  readonly model: Model;
  readonly backend?: 'auto' | BackendName;
  readonly windowing?: Partial<WindowingConfig>;
  readonly runtime?: RuntimeOptions;
  /**
   * Windows queued per stream in front of the model; beyond it the oldest are dropped (counted). Live serving keeps
   * it small (late predictions are worthless); replay, which must not lose anything, passes REPLAY_QUEUE.
   */
  readonly maxQueue?: number;
  readonly log?: (line: string) => void;
  /** Alignment options for tests (e.g. a TestScheduler); not for production use. */
  readonly alignExtras?: Partial<AlignOptions<Float32Array>> & { scheduler?: import('rxjs').SchedulerLike };
}

/**
 * Queue bound for replays: a recording is replayed faster than real time, and every window must get through. It is a
 * bound that is not reached: a replay passes a FlowCredit, whose `model` lane keeps at most MODEL_CREDITS windows
 * (plus what one event releases) between the aligner and the output.
 */
export const REPLAY_QUEUE = 1_000_000;
/** Events held by the JPEG/PNG decoder at once under a FlowCredit (its default maxPending). */
export const DECODE_CREDITS = 256;
/** Windows between the aligner and the model's output at once under a FlowCredit: two full batches. */
export const MODEL_CREDITS = 512;

export interface RunOptions {
  /** Credits of a producer that waits (a replay): see FlowCredit. */
  readonly credit?: FlowCredit;
  /** Told when each stream opens and, after its last prediction, ends (see StreamMark). */
  readonly onStream?: (mark: StreamMark) => void;
}

/** Counts of what the current run holds; each is bounded (by open streams, credits or caps), none grows with time. */
export interface Holdings {
  readonly alignerStreams: number;
  readonly alignerEvents: number;
  readonly modelStates: number;
  readonly modelQueued: number;
  readonly windowsInFlight: number;
  readonly lifecycleStreams: number;
}

export interface PipelineCounters {
  readonly counters: Record<string, number>;
  readonly stepLatencies: number[];
}

/**
 * The whole live path, as one function of the input stream: JPEG/PNG frames decoded, events aligned into windows
 * and featurized per window, features fused and normalised by the model, one batched GRU step per tick, one
 * prediction per window. Stream closes flow through so each stream's model state is freed after its last window.
 */
export class PredictionPipelineRunner {
  readonly labels: readonly string[];
  readonly featureConfig: FeatureConfig;
  readonly windowing: WindowingConfig;
  /** Where the windowing came from: saved with the model, or the live default for a model without one. */
  readonly windowingSource: 'model' | 'default';
  readonly inputs: { audioSampleRate: number; video: { width: number; height: number; format: 'gray' } };
  #current: { counters: () => Record<string, number>; holdings: () => Holdings } | undefined;
  #reportedLatencies = 0;

  private constructor(
    readonly runtime: ModelRuntime,
    readonly selection: BackendSelection,
    private readonly options: PipelineOptions,
  ) {
    this.labels = runtime.labels;
    this.featureConfig = parseFeatureConfig(options.model.config.featureConfig);
    // The windowing the model was trained with, unless the caller overrides it; older models carry none.
    const trained = modelWindowing(options.model.config.windowing);
    this.windowingSource = trained.source;
    this.windowing = { ...trained.windowing, ...options.windowing };
    this.inputs = {
      audioSampleRate: this.featureConfig.audio.sampleRate,
      // The demo page sends frames four times the thumbnail size: small enough to cost nothing, big enough to see.
      video: {
        width: this.featureConfig.video.thumbWidth * 4,
        height: this.featureConfig.video.thumbHeight * 4,
        format: 'gray',
      },
    };
  }

  static async create(options: PipelineOptions): Promise<PredictionPipelineRunner> {
    const maxBatch = options.runtime?.maxBatch ?? 256;
    const selection = await selectBackend(options.model, { backend: options.backend ?? 'auto', maxBatch });
    const log = options.log ?? (() => {});
    log(`braid: model backend ${selection.backend}: ${selection.reason}`);
    for (const f of selection.figures)
      log(
        `braid:   ${f.backend.padEnd(10)} batch ${String(f.batch).padStart(4)}: ${f.msPerStep.toFixed(3)} ms/step`,
      );
    for (const s of selection.skipped) log(`braid:   skipped ${s.backend}: ${s.reason}`);
    const runtime = new ModelRuntime(options.model, selection.kernel, options.runtime);
    const runner = new PredictionPipelineRunner(runtime, selection, options);
    const from =
      runner.windowingSource === 'model'
        ? 'saved with the model'
        : 'the live default: the model has none saved';
    log(`braid: windowing ${describeWindowing(runner.windowing)} (${from})`);
    return runner;
  }

  /**
   * Runs the pipeline on an input stream. With `options.credit` (a replay's FlowCredit) decoding and the model queue
   * spend its credits, so a producer that honours them loses nothing at any speed; `onStream` hears each stream's
   * lifecycle (see StreamMark), which orders a replay's output without waiting on streams that are done.
   */
  run(input$: Observable<StreamInput>, options: RunOptions = {}): Observable<Prediction> {
    const { credit, onStream } = options;
    const { operator, alignment, features, drops } = createFeatureStage(
      this.featureConfig,
      { ...this.windowing, ...this.options.alignExtras },
      credit ? { credit: credit.lane('decode', DECODE_CREDITS) } : {},
    );
    const modelLane = credit?.lane('model', MODEL_CREDITS);
    let lifecycle: StreamLifecycle | undefined;
    this.#current = {
      counters: () => {
        const a = alignment.stats();
        const out: Record<string, number> = {
          events_in: a.eventsIn,
          windows: a.windowsOut,
          late: a.late,
          partially_late: a.partiallyLate,
          forced_closes: a.forcedCloses,
          idle_transitions: a.idleTransitions,
        };
        for (const [reason, n] of Object.entries(a.rejected)) out[`rejected_${reason}`] = n;
        for (const [reason, n] of Object.entries(features.stats.snapshot())) out[`bad_frame_${reason}`] = n;
        for (const [reason, n] of Object.entries(drops.snapshot())) out[`decode_dropped_${reason}`] = n;
        const m = this.runtime.stats.snapshot(this.runtime.store.size);
        out['model_steps'] = m.steps;
        for (const [reason, n] of Object.entries(m.dropped)) out[`model_dropped_${reason}`] = n as number;
        return out;
      },
      holdings: () => {
        const a = alignment.stats();
        const l = lifecycle?.size ?? { open: 0, pending: 0, windowsInFlight: 0 };
        return {
          alignerStreams: a.openStreams,
          alignerEvents: a.bufferedEvents,
          modelStates: this.runtime.store.size,
          modelQueued: this.runtime.stats.queuedWindows,
          windowsInFlight: l.windowsInFlight,
          lifecycleStreams: l.open + l.pending,
        };
      },
    };
    return new Observable<Prediction>((subscriber) => {
      const streams = new StreamLifecycle((mark) => onStream?.(mark), modelLane);
      lifecycle = streams;
      const track = (input: unknown): void => {
        const id = (input as { streamId?: unknown } | null)?.streamId;
        if (typeof id !== 'string') return;
        streams.input(id, isStreamControl(input) ? input.control : undefined);
      };
      // Stream closes are interleaved with the windows in the order the aligner made them (its last windows, then
      // the close), so the model frees a stream's state right after that stream's last window.
      const fused$ = new Observable<PredictInput>((sink) => {
        const closes = alignment.closed$.subscribe((streamId) => {
          sink.next({ streamId, close: true });
          streams.closed(streamId);
        });
        const windows = input$
          .pipe(
            tap(track),
            operator,
            tap((w) => streams.window(w.streamId)),
          )
          .subscribe(sink);
        return () => {
          closes.unsubscribe();
          windows.unsubscribe();
        };
      });
      const predictions = fused$
        .pipe(
          predictWindows(this.runtime, {
            maxQueue: this.options.maxQueue ?? 32,
            // Close markers have no index; every dropped window is one that will not come back.
            onDrop: (d) => {
              if (Number.isInteger(d.index)) streams.done(d.streamId);
            },
          }),
        )
        .subscribe({
          next: (p) => {
            subscriber.next(p);
            streams.done(p.streamId);
          },
          error: (error: unknown) => subscriber.error(error),
          complete: () => subscriber.complete(),
        });
      return () => {
        predictions.unsubscribe();
        streams.dispose();
      };
    });
  }

  /** Items held right now by the current run's bounded structures: for memory checks over long replays. */
  holdings(): Holdings {
    return (
      this.#current?.holdings() ?? {
        alignerStreams: 0,
        alignerEvents: 0,
        modelStates: this.runtime.store.size,
        modelQueued: 0,
        windowsInFlight: 0,
        lifecycleStreams: 0,
      }
    );
  }

  stats(): PipelineCounters {
    const m = this.runtime.stats.snapshot(this.runtime.store.size);
    const latencies = m.stepLatencyMs;
    // Report each latency sample once: the runtime keeps a ring of recent ones.
    const fresh = latencies.slice(Math.max(0, latencies.length - (m.steps - this.#reportedLatencies)));
    this.#reportedLatencies = m.steps;
    return { counters: this.#current?.counters() ?? {}, stepLatencies: fresh.map((x: number) => x / 1000) };
  }
}
