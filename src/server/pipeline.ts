import type { Observable } from 'rxjs';
import type { StreamInput } from '../core/events.js';
import type { RefusalListener } from '../core/refusal.js';
import type { Prediction } from '../core/window.js';
import type { PipelineInputs } from '../pipeline/prediction-pipeline.js';
import type { StreamMark } from '../pipeline/stream-lifecycle.js';
import type { PipelineStats } from './metrics.js';

export type { PipelineInputs };

/** The prediction pipeline a server runs: server input (events and stream controls) in, predictions out. */
export interface PredictionPipeline {
  readonly labels: readonly string[];
  readonly inputs?: PipelineInputs;
  /** Names the model for clients (the `ready` and `welcome` messages). */
  readonly modelId?: string;
  /** The event-time windowing, in µs (idleTimeout may be Infinity), for the `ready` message. */
  readonly windowing?: {
    readonly size: number;
    readonly hop: number;
    readonly phase?: 'aligned' | 'stream';
    /** The aligner's origin (AlignOptions.origin; default 0): with the phase, each stream's grid in `ready`. */
    readonly origin?: number;
    readonly outOfOrderness: number;
    readonly allowedLateness: number;
    readonly idleTimeout: number;
  };
  /** `sinks.refused` hears of every input dropped inside the pipeline, so its producer can be told. */
  run(
    input$: Observable<StreamInput>,
    sinks?: {
      readonly refused?: RefusalListener;
      /** Every model step as it ends (latency ms, rows). */
      readonly step?: (ms: number, rows: number) => void;
      /**
       * Each stream's open and, once it has closed and its last window is out (predicted or dropped), its end: the
       * server sends the stream's closing events and announces `closed` to subscribers only then. A pipeline must
       * report the end of every close it is given.
       */
      readonly onStream?: (mark: StreamMark) => void;
    },
  ): Observable<Prediction>;
  stats?(): PipelineStats;
}
