import { filter, finalize, identity, Observable, type Subscription, tap } from 'rxjs';
import type { AlignOptions } from '../align/options.js';
import { describeWindowing, modelWindowing, type WindowingConfig } from '../align/windowing.js';
import { isStreamControl, type StreamInput } from '../core/events.js';
import type { FlowCredit } from '../core/flow-credit.js';
import { type Logger, silentLogger } from '../core/logger.js';
import { type RefusalListener, refusalOf } from '../core/refusal.js';
import { wallClockMicros } from '../core/time.js';
import type { Prediction } from '../core/window.js';
import { MAX_CHANNELS, MAX_RATE, MIN_RATE } from '../features/audio-features.js';
import { type FeatureConfig, parseFeatureConfig } from '../features/config.js';
import { loadPcmResampler, type PcmResampler } from '../features/resampler.js';
import { type PredictInput, predictWindows } from '../model/predict-windows.js';
import { type FusedWindow, ModelRuntime, type RuntimeOptions } from '../model/runtime.js';
import { type BackendSelection, selectBackend } from '../model/select-backend.js';
import type { BackendName } from '../model/step-kernel.js';
import type { Model } from '../model/weights.js';
import { createFeatureStage } from './feature-stage.js';
import type { RunResume } from './resume.js';
import { StreamLifecycle, type StreamMark } from './stream-lifecycle.js';

// The windowing lives in src/align/windowing.ts; re-exported here for code that imported it from the pipeline.
export { DEFAULT_WINDOWING, type WindowingConfig } from '../align/windowing.js';

export interface PipelineOptions {
  readonly model: Model;
  /** Names the model for clients (default "model"): the CLI uses the directory name and the weights' hash. */
  readonly modelId?: string;
  readonly backend?: 'auto' | BackendName;
  /** webgpu: streams whose state the GPU holds at once (its state slots). Default 10,000. */
  readonly gpuStreams?: number;
  readonly windowing?: Partial<WindowingConfig>;
  readonly runtime?: RuntimeOptions;
  /**
   * Windows queued per stream in front of the model; beyond it the oldest are dropped (counted). Live serving keeps
   * it small (late predictions are worthless); replay, which must not lose anything, passes REPLAY_QUEUE.
   */
  readonly maxQueue?: number;
  readonly log?: Logger;
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

/** Counts of what the current run holds; each is bounded (by open streams, credits or caps), none grows with time. */
export interface Holdings {
  readonly alignerStreams: number;
  readonly alignerEvents: number;
  readonly modelStates: number;
  readonly modelQueued: number;
  readonly windowsInFlight: number;
  readonly lifecycleStreams: number;
}

/** What producers should send (the demo page sizes its camera frames from this; a v2 hello is answered with it). */
export interface PipelineInputs {
  /** The rate the model's audio features take; other rates are resampled. */
  readonly audioSampleRate: number;
  readonly audio?: {
    readonly sampleRates: { readonly min: number; readonly max: number };
    readonly channels: readonly number[];
  };
  readonly video: { readonly width: number; readonly height: number; readonly format: 'gray' | 'rgb' };
}

/** Side outputs of one run of a pipeline, and the credits of a producer that waits. */
export interface PipelineSinks {
  readonly refused?: RefusalListener;
  /** Every fused window on its way to the model (its features and presence), for audits and exports. */
  readonly windows?: (window: FusedWindow) => void;
  /** Every model step as it ends: latency in ms (results read back included) and rows. */
  readonly step?: (ms: number, rows: number) => void;
  /**
   * Credits of a producer that waits (a replay, see FlowCredit): decoding and the model queue spend them, so a
   * producer that honours them loses nothing at any speed.
   */
  readonly credit?: FlowCredit;
  /** Told when each stream opens and, after its last prediction, ends (see StreamMark). */
  readonly onStream?: (mark: StreamMark) => void;
  /** Streams carried on from a checkpoint, and the hooks for taking the next one (see RunResume). */
  readonly resume?: RunResume;
}

/** The options of one run: {@link PipelineSinks}. */
export type RunOptions = PipelineSinks;

export interface PipelineCounters {
  readonly counters: Record<string, number>;
  readonly gauges: Record<string, number>;
}

/**
 * The whole live path, as one function of the input stream: JPEG/PNG frames decoded, events aligned into windows
 * and featurized per window, features fused and normalised by the model, one batched GRU step per tick, one
 * prediction per window. Stream closes flow through so each stream's model state is freed after its last window.
 */
export class PredictionPipelineRunner {
  readonly labels: readonly string[];
  readonly modelId: string;
  readonly featureConfig: FeatureConfig;
  readonly windowing: WindowingConfig;
  /** Where the windowing came from: saved with the model, or the live default for a model without one. */
  readonly windowingSource: 'model' | 'default';
  readonly inputs: PipelineInputs;
  #current:
    | {
        counters: () => Record<string, number>;
        gauges: () => Record<string, number>;
        holdings: () => Holdings;
      }
    | undefined;

  private constructor(
    readonly runtime: ModelRuntime,
    readonly selection: BackendSelection,
    private readonly options: PipelineOptions,
    private readonly resampler: PcmResampler,
  ) {
    this.labels = runtime.labels;
    this.modelId = options.modelId ?? 'model';
    this.featureConfig = parseFeatureConfig(options.model.config.featureConfig);
    // The windowing the model was trained with, unless the caller overrides it; older models carry none.
    const trained = modelWindowing(options.model.config.windowing);
    this.windowingSource = trained.source;
    this.windowing = { ...trained.windowing, ...options.windowing };
    this.inputs = {
      audioSampleRate: this.featureConfig.audio.sampleRate,
      // Any rate and mono or stereo: the features resample (src/features/resampler.ts).
      audio: { sampleRates: { min: MIN_RATE, max: MAX_RATE }, channels: [1, MAX_CHANNELS] },
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
    const selection = await selectBackend(options.model, {
      backend: options.backend ?? 'auto',
      maxBatch,
      maxStreams: options.gpuStreams,
    });
    const log = options.log ?? silentLogger;
    log.info(
      { event: 'backend', backend: selection.backend, reason: selection.reason },
      `model backend ${selection.backend}: ${selection.reason}`,
    );
    for (const f of selection.figures)
      log.debug(
        { event: 'backend_timing', backend: f.backend, batch: f.batch, msPerStep: f.msPerStep },
        `${f.backend} batch ${f.batch}: ${f.msPerStep.toFixed(3)} ms/step`,
      );
    for (const s of selection.skipped)
      log.debug(
        { event: 'backend_skipped', backend: s.backend, reason: s.reason },
        `skipped ${s.backend}: ${s.reason}`,
      );
    const runtime = new ModelRuntime(options.model, selection.kernel, { log, ...options.runtime });
    const resampler = await loadPcmResampler(
      parseFeatureConfig(options.model.config.featureConfig).audio.sampleRate,
    );
    const runner = new PredictionPipelineRunner(runtime, selection, options, resampler);
    const from =
      runner.windowingSource === 'model'
        ? 'saved with the model'
        : 'the live default: the model has none saved';
    log.info(
      { event: 'windowing', windowing: runner.windowing, source: runner.windowingSource },
      `windowing ${describeWindowing(runner.windowing)} (${from})`,
    );
    return runner;
  }

  /**
   * The live path over one input stream. `sinks.refused` hears of every input dropped on the way — refused or late
   * in alignment, undecodable or unusable in the features, windows dropped in front of the model — with the stream,
   * seq and time it came with, so the server can tell the producer. With `sinks.credit` (a replay's FlowCredit)
   * decoding and the model queue spend its credits; `sinks.onStream` hears each stream's lifecycle (StreamMark),
   * which orders a replay's output without waiting on streams that are done.
   */
  run(input$: Observable<StreamInput>, sinks: PipelineSinks = {}): Observable<Prediction> {
    const { refused, credit, onStream, resume } = sinks;
    for (const [streamId, state] of resume?.model ?? []) this.runtime.importStream(streamId, state);
    const { operator, alignment, features, drops } = createFeatureStage(
      this.featureConfig,
      {
        ...this.windowing,
        ...this.options.alignExtras,
        ...(resume?.aligner && { restore: resume.aligner }),
        ...(resume?.align && { hooks: resume.align }),
      },
      {
        onRefusal: refused,
        resampler: this.resampler,
        ...(credit && { credit: credit.lane('decode', DECODE_CREDITS) }),
      },
    );
    const modelLane = credit?.lane('model', MODEL_CREDITS);
    let lifecycle: StreamLifecycle | undefined;
    this.#current = {
      counters: () => {
        const a = alignment.stats();
        const out: Record<string, number> = {
          windows: a.windowsOut,
          partially_late: a.partiallyLate,
          partial_windows: a.partialWindows,
          audio_gaps: a.audioGaps,
          audio_overlaps: a.audioOverlaps,
          forced_closes: a.forcedCloses,
          idle_transitions: a.idleTransitions,
        };
        for (const [modality, n] of Object.entries(a.eventsByModality)) out[`events_in_${modality}`] = n;
        for (const [modality, n] of Object.entries(a.lateByModality)) out[`late_${modality}`] = n;
        for (const [reason, n] of Object.entries(a.rejected)) out[`rejected_${reason}`] = n;
        for (const [reason, n] of Object.entries(features.stats.snapshot())) out[`bad_frame_${reason}`] = n;
        for (const [reason, n] of Object.entries(drops.snapshot())) out[`decode_dropped_${reason}`] = n;
        // The runtime's own fields, not its snapshot(): that copies the last 1024 step latencies, and a shard reads
        // these figures with every batch of predictions it hands back.
        const m = this.runtime.stats;
        out['stream_restarts'] = a.restarts;
        out['model_steps'] = m.steps;
        for (const [reason, n] of Object.entries(m.resets)) out[`model_resets_${reason}`] = n;
        out['model_backend_failovers'] = m.failovers;
        for (const [reason, n] of Object.entries(m.dropped)) out[`model_dropped_${reason}`] = n;
        return out;
      },
      gauges: () => {
        const a = alignment.stats();
        const out: Record<string, number> = {
          open_streams: a.openStreams,
          buffered_events: a.bufferedEvents,
          model_states: this.runtime.store.size,
          model_queued_windows: this.runtime.stats.queuedWindows,
        };
        const lag = alignment.watermarkLag(wallClockMicros());
        for (const [modality, micros] of Object.entries(lag)) out[`watermark_lag_${modality}`] = micros / 1e6;
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
    const stopObserving = sinks.step ? this.runtime.stats.observeSteps(sinks.step) : undefined;
    return new Observable<Prediction>((subscriber) => {
      const streams = new StreamLifecycle((mark) => onStream?.(mark), modelLane);
      lifecycle = streams;
      const track = (input: unknown): void => {
        const id = (input as { streamId?: unknown } | null)?.streamId;
        if (typeof id !== 'string') return;
        streams.input(id, isStreamControl(input) ? input.control : undefined);
      };
      // Stream closes and restarts are interleaved with the windows in the order the aligner made them (its last
      // windows, then the close), so the model frees or rewinds a stream right after that stream's last window.
      const fused$ = new Observable<PredictInput>((sink) => {
        const side: Subscription[] = [
          alignment.closed$.subscribe((streamId) => {
            sink.next({ streamId, close: true });
            streams.closed(streamId);
          }),
          alignment.restarted$.subscribe((streamId) => sink.next({ streamId, restart: true })),
        ];
        if (refused) {
          side.push(
            alignment.rejected$.subscribe((r) => {
              const refusal = refusalOf(r.input, r.reason, r.message);
              if (refusal) refused(refusal);
            }),
            alignment.late$.subscribe(({ event, closedUpTo }) =>
              refused({
                streamId: event.streamId,
                modality: event.modality,
                seq: event.seq,
                time: event.time,
                reason: 'late',
                message: `${event.modality} event at ${event.time} µs arrived after its window closed (windows are closed up to ${closedUpTo} µs)`,
              }),
            ),
          );
        }
        const windowTap = sinks.windows;
        const admit = resume?.admit;
        const windows = input$
          .pipe(
            tap(track),
            operator,
            admit ? filter((w: FusedWindow) => admit(w)) : identity,
            windowTap ? tap((w: FusedWindow) => windowTap(w)) : identity,
            tap((w: FusedWindow) => streams.window(w.streamId)),
          )
          .subscribe(sink);
        return () => {
          for (const s of side) s.unsubscribe();
          windows.unsubscribe();
        };
      });
      const predictions = fused$
        .pipe(
          predictWindows(this.runtime, {
            maxQueue: this.options.maxQueue ?? 32,
            onDrop: (d) => {
              // Close and restart markers have no index; every dropped window is one that will not come back.
              if (Number.isInteger(d.index)) streams.done(d.streamId);
              refused?.({
                streamId: d.streamId,
                windowIndex: d.index,
                reason: `model_${d.reason}`,
                message: d.message,
              });
            },
          }),
          finalize(() => stopObserving?.()),
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

  /** Counters of the current run (cumulative since it started) and gauges of now; reading changes nothing. */
  stats(): PipelineCounters {
    return { counters: this.counters(), gauges: this.gauges() };
  }

  /** The counters of stats() alone: cheap, for a reader that needs them with every batch of predictions. */
  counters(): Record<string, number> {
    return this.#current?.counters() ?? {};
  }

  /** The gauges of stats() alone: they walk every open stream (watermark lags). */
  gauges(): Record<string, number> {
    return this.#current?.gauges() ?? {};
  }
}
