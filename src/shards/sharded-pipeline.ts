import type { Worker } from 'node:worker_threads';
import { Observable } from 'rxjs';
import type { WindowingConfig } from '../align/windowing.js';
import { isStreamControl, type StreamInput } from '../core/events.js';
import { type Logger, silentLogger } from '../core/logger.js';
import type { Prediction } from '../core/window.js';
import type {
  Holdings,
  PipelineCounters,
  PipelineInputs,
  PipelineSinks,
} from '../pipeline/prediction-pipeline.js';
import { encodeInputs } from './input-batch.js';
import type { FromShard, ShardSetup, ToShard } from './shard-messages.js';
import { shardOf } from './shard-of.js';
import { startShardThread } from './shard-thread.js';

/** What the main thread says of the model without running it (from a PredictionPipelineRunner it made). */
export interface ShardedModel {
  readonly labels: readonly string[];
  readonly modelId: string;
  readonly inputs: PipelineInputs;
  readonly windowing: WindowingConfig;
}

export interface ShardedPipelineOptions {
  /** Threads, each owning the streams whose id hashes to it (shardOf). */
  readonly shards: number;
  readonly modelDir: string;
  /** A concrete backend (not `auto`): chosen once, by the caller. */
  readonly backend: string;
  readonly gpuStreams?: number;
  readonly maxQueue?: number;
  /**
   * Inputs the main thread may have handed to one shard that the shard has not taken yet. Beyond it the shard's
   * events are refused (`shard_backlog`, counted and told to the producer) rather than queued without bound; stream
   * controls always go through.
   */
  readonly maxInFlight?: number;
  readonly log?: Logger;
}

/**
 * Batches of at least this many inputs go packed into one transferred buffer; smaller ones as objects, whose
 * structured clone costs less than a buffer's allocation and transfer (bench/handoff.ts: the two cross between 16 and
 * 32 inputs per message).
 */
const PACK_FROM = 32;

/** Inputs one shard may have in flight: about 3 s of 64 streams of the demo page's traffic. */
export const DEFAULT_MAX_IN_FLIGHT = 50_000;

const zeroHoldings: Holdings = {
  alignerStreams: 0,
  alignerEvents: 0,
  modelStates: 0,
  modelQueued: 0,
  windowsInFlight: 0,
  lifecycleStreams: 0,
};

interface ShardState {
  readonly thread: Worker;
  inFlight: number;
  batch: StreamInput[];
  stats: PipelineCounters;
  holdings: Holdings;
  complete: boolean;
}

/**
 * The live path on every core: streams sharded by id over worker threads, each running the whole per-stream path
 * (decode, align, features, model step) exactly as a single-process pipeline does, so a stream's predictions are the
 * same bytes whichever thread computed them. The WebSocket front stays on the main thread and hands each shard its
 * inputs in arrival order, one message per shard per millisecond at most, packed into one transferred buffer when
 * there are many. A shard is the unit that owns streams here, as a partition is across machines (src/cluster): one
 * hash, shardOf, says which.
 */
export class ShardedPipeline {
  readonly labels: readonly string[];
  readonly modelId: string;
  readonly inputs: PipelineInputs;
  readonly windowing: WindowingConfig;
  readonly shards: number;
  readonly #options: ShardedPipelineOptions;
  readonly #log: Logger;
  #idle: Worker[] | undefined;
  #current: ShardState[] | undefined;
  /** Events the current run refused at a shard's in-flight bound (counters are per run, as a pipeline's are). */
  #refused = 0;

  private constructor(model: ShardedModel, options: ShardedPipelineOptions, idle: Worker[]) {
    this.labels = model.labels;
    this.modelId = model.modelId;
    this.inputs = model.inputs;
    this.windowing = model.windowing;
    this.shards = options.shards;
    this.#options = options;
    this.#log = options.log ?? silentLogger;
    this.#idle = idle;
  }

  /** Starts the shard threads and waits until each has loaded the model, so a start that cannot work fails here. */
  static async create(model: ShardedModel, options: ShardedPipelineOptions): Promise<ShardedPipeline> {
    if (!Number.isInteger(options.shards) || options.shards < 1)
      throw new RangeError(`shards must be a positive integer, got ${options.shards}`);
    const threads = startThreads(options);
    try {
      await Promise.all(threads.map((t, i) => ready(t, i)));
    } catch (error) {
      await Promise.all(threads.map((t) => t.terminate()));
      throw error;
    }
    return new ShardedPipeline(model, options, threads);
  }

  run(input$: Observable<StreamInput>, sinks: PipelineSinks = {}): Observable<Prediction> {
    return new Observable<Prediction>((subscriber) => {
      const threads = this.#idle ?? startThreads(this.#options);
      this.#idle = undefined;
      const maxInFlight = this.#options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
      const shards: ShardState[] = threads.map((thread) => ({
        thread,
        inFlight: 0,
        batch: [],
        stats: { counters: {}, gauges: {} },
        holdings: zeroHoldings,
        complete: false,
      }));
      this.#current = shards;
      this.#refused = 0;
      let scheduled = false;
      let ended = false;
      const send = (): void => {
        scheduled = false;
        for (const shard of shards) {
          if (shard.batch.length === 0) continue;
          if (shard.batch.length < PACK_FROM)
            shard.thread.postMessage({ type: 'inputs', inputs: shard.batch } satisfies ToShard);
          else {
            const batch = encodeInputs(shard.batch);
            shard.thread.postMessage({ type: 'packed', batch } satisfies ToShard, [batch.bytes]);
          }
          shard.batch = [];
        }
        if (ended) for (const shard of shards) shard.thread.postMessage({ type: 'end' } satisfies ToShard);
      };
      const schedule = (): void => {
        if (scheduled) return;
        scheduled = true;
        // Inputs linger up to a millisecond (Kafka's linger.ms): fewer, larger messages, each cheaper per input.
        setTimeout(send, 1);
      };
      const fail = (error: Error): void => subscriber.error(error);

      shards.forEach((shard, index) => {
        shard.thread.on('message', (message: FromShard) => {
          switch (message.type) {
            case 'out':
              shard.inFlight -= message.taken;
              if (message.counters) shard.stats = { ...shard.stats, counters: message.counters };
              if (message.gauges) shard.stats = { ...shard.stats, gauges: message.gauges };
              if (message.holdings) shard.holdings = message.holdings;
              for (const item of message.items) {
                if (item.k === 'prediction') subscriber.next(item.prediction);
                else if (item.k === 'refused') sinks.refused?.(item.refusal);
                else if (item.k === 'stream') sinks.onStream?.(item.mark);
                else sinks.step?.(item.ms, item.rows);
              }
              return;
            case 'log':
              this.#log[message.level](message.fields, message.message);
              return;
            case 'complete':
              shard.complete = true;
              if (shards.every((s) => s.complete)) subscriber.complete();
              return;
            case 'failed':
              return fail(new Error(`shard ${index} failed: ${message.message}`));
            case 'ready':
              return;
          }
        });
        shard.thread.on('error', (error) => fail(new Error(`shard ${index} failed: ${error.message}`)));
        shard.thread.on('exit', (code) => {
          if (!shard.complete)
            fail(new Error(`shard ${index} exited with code ${code} before its input ended`));
        });
      });

      const inputs = input$.subscribe({
        next: (input) => {
          const shard = shards[shardOf(input.streamId, shards.length)] as ShardState;
          if (!isStreamControl(input) && shard.inFlight >= maxInFlight) {
            this.#refused++;
            sinks.refused?.({
              streamId: input.streamId,
              modality: input.modality,
              seq: input.seq,
              time: input.time,
              reason: 'shard_backlog',
              message: `the stream's shard has ${shard.inFlight} inputs not yet taken (at most ${maxInFlight}): the server is behind`,
            });
            return;
          }
          shard.inFlight++;
          shard.batch.push(input);
          schedule();
        },
        error: (error: unknown) => fail(error instanceof Error ? error : new Error(String(error))),
        complete: () => {
          ended = true;
          schedule();
        },
      });
      return () => {
        // The run's figures stay readable after it ends (stats, holdings), as a single-process run's do.
        inputs.unsubscribe();
        for (const shard of shards) {
          shard.thread.removeAllListeners();
          void shard.thread.terminate();
        }
      };
    });
  }

  /** Counters of the current run summed over its shards (as each last reported them), gauges of now. */
  stats(): PipelineCounters {
    const counters: Record<string, number> = {};
    const gauges: Record<string, number> = {};
    for (const shard of this.#current ?? []) {
      for (const [key, value] of Object.entries(shard.stats.counters))
        counters[key] = (counters[key] ?? 0) + value;
      // A lag is the worst stream's, wherever it is; the rest are counts of things held.
      for (const [key, value] of Object.entries(shard.stats.gauges))
        gauges[key] = key.startsWith('watermark_lag_')
          ? Math.max(gauges[key] ?? value, value)
          : (gauges[key] ?? 0) + value;
    }
    counters['shard_rejected_shard_backlog'] = this.#refused;
    gauges['shard_inputs_in_flight'] = (this.#current ?? []).reduce((a, s) => a + s.inFlight, 0);
    return { counters, gauges };
  }

  /** Items held by the current run's shards, summed: for memory checks. */
  holdings(): Holdings {
    const total: Record<keyof Holdings, number> = { ...zeroHoldings };
    for (const shard of this.#current ?? [])
      for (const key of Object.keys(total) as (keyof Holdings)[]) total[key] += shard.holdings[key];
    return total;
  }

  /** Stops threads started for a run that never came. */
  async close(): Promise<void> {
    const idle = this.#idle ?? [];
    this.#idle = undefined;
    await Promise.all(idle.map((t) => t.terminate()));
  }
}

function startThreads(options: ShardedPipelineOptions): Worker[] {
  return Array.from({ length: options.shards }, (_, shard) => {
    const setup: ShardSetup = {
      shard,
      modelDir: options.modelDir,
      backend: options.backend,
      gpuStreams: options.gpuStreams,
      maxQueue: options.maxQueue,
    };
    return startShardThread(setup);
  });
}

function ready(thread: Worker, index: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: FromShard) => {
      if (message.type === 'ready') done(resolve);
      else if (message.type === 'failed')
        done(() => reject(new Error(`shard ${index} could not start: ${message.message}`)));
    };
    const onError = (error: Error) =>
      done(() => reject(new Error(`shard ${index} could not start: ${error.message}`)));
    const onExit = (code: number) =>
      done(() => reject(new Error(`shard ${index} exited with code ${code} at start`)));
    const done = (then: () => void) => {
      thread.off('message', onMessage);
      thread.off('error', onError);
      thread.off('exit', onExit);
      then();
    };
    thread.on('message', onMessage);
    thread.on('error', onError);
    thread.on('exit', onExit);
  });
}
