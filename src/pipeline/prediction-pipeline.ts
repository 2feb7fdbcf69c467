import { finalize, identity, Observable, type Subscription, tap } from 'rxjs';
import { z } from 'zod';
import type { AlignOptions } from '../align/options.js';
import { InvalidOptionError } from '../core/errors.js';
import type { Modality, StreamInput } from '../core/events.js';
import { type Logger, silentLogger } from '../core/logger.js';
import { type RefusalListener, refusalOf } from '../core/refusal.js';
import { ms, wallClockMicros } from '../core/time.js';
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

/** Event-time windowing of the live pipeline; saved with a model so training and serving window alike. */
export interface WindowingConfig {
  readonly size: number;
  readonly hop: number;
  readonly outOfOrderness: number;
  readonly allowedLateness: number;
  readonly idleTimeout: number;
  /** Sparse modalities never hold a window back: their events count if they arrive before it closes. */
  readonly nonGating: readonly Modality[];
  /** Per-stream window phase (see AlignOptions.phase); absent means `aligned`, as models trained before it used. */
  readonly phase?: 'aligned' | 'stream';
}

/**
 * 500 ms tumbling windows. A window closes when every gating modality has passed its end (40 ms of jitter allowed),
 * or at once when the producer sends a progress bound past it (the demo page does, every 20 ms); a modality silent
 * for 1 s of wall time stops holding windows. Text and labels are sparse: they never hold a window back. Each
 * stream's window grid has its own phase, hashed from its id, so a server's streams do not all close a window at the
 * same instant (a burst of featurization and one big step) but spread over the hop.
 */
export const DEFAULT_WINDOWING: WindowingConfig = {
  size: ms(500),
  hop: ms(500),
  outOfOrderness: ms(40),
  allowedLateness: 0,
  idleTimeout: ms(1000),
  nonGating: ['text', 'label'],
  phase: 'stream',
};

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

const windowingSchema = z
  .object({
    size: z.number().int().positive(),
    hop: z.number().int().positive(),
    outOfOrderness: z.number().int().nonnegative(),
    allowedLateness: z.number().int().nonnegative(),
    idleTimeout: z.number().positive().nullable(),
    nonGating: z.array(z.enum(['audio', 'video', 'text', 'label'])),
    phase: z.enum(['aligned', 'stream']).optional(),
  })
  .partial();

/** A model's saved windowing, checked; JSON has no Infinity, so a disabled idle timeout is saved as null. */
export function parseWindowing(value: unknown): Partial<WindowingConfig> {
  if (value === undefined) return {};
  const parsed = windowingSchema.safeParse(value);
  if (!parsed.success)
    throw new InvalidOptionError(
      'model',
      `its saved windowing is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  const { idleTimeout, ...rest } = parsed.data;
  return idleTimeout === null
    ? { ...rest, idleTimeout: Number.POSITIVE_INFINITY }
    : idleTimeout === undefined
      ? rest
      : { ...rest, idleTimeout };
}

/** Queue bound for replays: a recording is replayed faster than real time, and every window must get through. */
export const REPLAY_QUEUE = 1_000_000;

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

/** Side outputs of one run of a pipeline. */
export interface PipelineSinks {
  readonly refused?: RefusalListener;
  /** Every fused window on its way to the model (its features and presence), for audits and exports. */
  readonly windows?: (window: FusedWindow) => void;
  /** Every model step as it ends: latency in ms (results read back included) and rows. */
  readonly step?: (ms: number, rows: number) => void;
}

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
  readonly inputs: PipelineInputs;
  #current: { counters: () => Record<string, number>; gauges: () => Record<string, number> } | undefined;

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
    this.windowing = {
      ...DEFAULT_WINDOWING,
      ...parseWindowing(options.model.config.windowing),
      ...options.windowing,
    };
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
    return new PredictionPipelineRunner(runtime, selection, options, resampler);
  }

  /**
   * The live path over one input stream. `sinks.refused` hears of every input dropped on the way — refused or late
   * in alignment, undecodable or unusable in the features, windows dropped in front of the model — with the stream,
   * seq and time it came with, so the server can tell the producer.
   */
  run(input$: Observable<StreamInput>, sinks: PipelineSinks = {}): Observable<Prediction> {
    const refused = sinks.refused;
    const { operator, alignment, features, drops } = createFeatureStage(
      this.featureConfig,
      { ...this.windowing, ...this.options.alignExtras },
      { onRefusal: refused, resampler: this.resampler },
    );
    this.#current = {
      counters: () => {
        const a = alignment.stats();
        const out: Record<string, number> = {
          windows: a.windowsOut,
          partially_late: a.partiallyLate,
          partial_windows: a.partialWindows,
          forced_closes: a.forcedCloses,
          idle_transitions: a.idleTransitions,
        };
        for (const [modality, n] of Object.entries(a.eventsByModality)) out[`events_in_${modality}`] = n;
        for (const [modality, n] of Object.entries(a.lateByModality)) out[`late_${modality}`] = n;
        for (const [reason, n] of Object.entries(a.rejected)) out[`rejected_${reason}`] = n;
        for (const [reason, n] of Object.entries(features.stats.snapshot())) out[`bad_frame_${reason}`] = n;
        for (const [reason, n] of Object.entries(drops.snapshot())) out[`decode_dropped_${reason}`] = n;
        const m = this.runtime.stats.snapshot(this.runtime.store.size);
        out['stream_restarts'] = a.restarts;
        out['model_steps'] = m.steps;
        for (const [reason, n] of Object.entries(m.resets)) out[`model_resets_${reason}`] = n as number;
        out['model_backend_failovers'] = m.failovers;
        for (const [reason, n] of Object.entries(m.dropped)) out[`model_dropped_${reason}`] = n as number;
        return out;
      },
      gauges: () => {
        const m = this.runtime.stats.snapshot(this.runtime.store.size);
        const out: Record<string, number> = {
          open_streams: alignment.openStreams().length,
          buffered_events: alignment.stats().bufferedEvents,
          model_states: m.activeStates,
          model_queued_windows: m.queuedWindows,
        };
        const lag = alignment.watermarkLag(wallClockMicros());
        for (const [modality, micros] of Object.entries(lag)) out[`watermark_lag_${modality}`] = micros / 1e6;
        return out;
      },
    };
    const stopObserving = sinks.step ? this.runtime.stats.observeSteps(sinks.step) : undefined;
    // Stream closes and restarts are interleaved with the windows in the order the aligner made them (its last
    // windows, then the close), so the model frees or rewinds a stream right after that stream's last window.
    const fused$ = new Observable<PredictInput>((subscriber) => {
      const side: Subscription[] = [
        alignment.closed$.subscribe((streamId) => subscriber.next({ streamId, close: true })),
        alignment.restarted$.subscribe((streamId) => subscriber.next({ streamId, restart: true })),
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
      const windows = input$
        .pipe(operator, windowTap ? tap((w: FusedWindow) => windowTap(w)) : identity)
        .subscribe(subscriber);
      return () => {
        for (const s of side) s.unsubscribe();
        windows.unsubscribe();
      };
    });
    return fused$.pipe(
      predictWindows(this.runtime, {
        maxQueue: this.options.maxQueue ?? 32,
        onDrop: refused
          ? (d) =>
              refused({
                streamId: d.streamId,
                windowIndex: d.index,
                reason: `model_${d.reason}`,
                message: d.message,
              })
          : undefined,
      }),
      finalize(() => stopObserving?.()),
    );
  }

  /** Counters of the current run (cumulative since it started) and gauges of now; reading changes nothing. */
  stats(): PipelineCounters {
    return { counters: this.#current?.counters() ?? {}, gauges: this.#current?.gauges() ?? {} };
  }
}
