import type { StreamInput } from '../core/events.js';
import type { InputRefusal } from '../core/refusal.js';
import type { Prediction } from '../core/window.js';
import type { Holdings, PipelineCounters } from '../pipeline/prediction-pipeline.js';
import type { StreamMark } from '../pipeline/stream-lifecycle.js';
import type { InputBatch } from './input-batch.js';

/** What a shard thread is started with (its workerData). */
export interface ShardSetup {
  readonly shard: number;
  readonly modelDir: string;
  /** A concrete backend, chosen once by the main thread, so shards do not each time the backends. */
  readonly backend: string;
  readonly gpuStreams?: number;
  readonly maxQueue?: number;
}

/** Main thread → shard: the shard's inputs in arrival order, as objects or packed (input-batch.ts), or the end. */
export type ToShard =
  | { readonly type: 'inputs'; readonly inputs: readonly StreamInput[] }
  | { readonly type: 'packed'; readonly batch: InputBatch }
  | { readonly type: 'end' };

/** One thing the shard's pipeline put out, in the order it did. */
export type ShardOutput =
  | { readonly k: 'prediction'; readonly prediction: Prediction }
  | { readonly k: 'refused'; readonly refusal: InputRefusal }
  | { readonly k: 'stream'; readonly mark: StreamMark }
  | { readonly k: 'step'; readonly ms: number; readonly rows: number };

/** Shard → main thread. */
export type FromShard =
  | { readonly type: 'ready' }
  | {
      readonly type: 'out';
      readonly items: readonly ShardOutput[];
      /** Inputs taken from the main thread since the last message: the main thread's bound on what is in flight. */
      readonly taken: number;
      /**
       * The run's counters now: with every message that carries items (so /metrics is never behind a prediction a
       * client has), and at least every 250 ms.
       */
      readonly counters?: PipelineCounters['counters'];
      /** Gauges and holdings now (each walks every open stream): at most every 250 ms, and in the last message. */
      readonly gauges?: PipelineCounters['gauges'];
      readonly holdings?: Holdings;
    }
  | {
      readonly type: 'log';
      readonly level: 'error' | 'warn';
      readonly fields: Record<string, unknown>;
      readonly message: string;
    }
  | { readonly type: 'complete' }
  | { readonly type: 'failed'; readonly message: string; readonly stack?: string };
