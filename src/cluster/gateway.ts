import { randomBytes } from 'node:crypto';
import { Observable } from 'rxjs';
import type { StreamInput } from '../core/events.js';
import { type Logger, silentLogger } from '../core/logger.js';
import { refusalOf } from '../core/refusal.js';
import type { Prediction } from '../core/window.js';
import type { PredictionPipeline } from '../server/pipeline.js';
import { decodePrediction, encodeInput, isStreamEnd } from './codec.js';
import { partitionKeys, partitionOf, senderKey } from './partition.js';
import { type BraidRedis, braidRedis, loadScripts } from './redis.js';

export interface GatewayOptions {
  /**
   * Commands fail at once while disconnected (braidRedis 'refuse'): input is refused, never queued in memory. When
   * connected already, its scripts must be loaded (loadScripts); after a reconnect the gateway loads them itself.
   */
  readonly redis: BraidRedis;
  /**
   * A second connection for the blocking reads of predictions (braidRedis 'queue'). On a Redis Cluster it reads
   * one partition, and the gateway opens one more like it for each of the others (see createGateway).
   */
  readonly reader: BraidRedis;
  readonly partitions: number;
  /** Entries a partition may hold that no worker has committed past; beyond it input is refused (`cluster_backlog`). */
  readonly lagCap: number;
  /** What the server tells producers and subscribers (model, labels, windowing): the workers' model. */
  readonly model: Pick<PredictionPipeline, 'labels' | 'inputs' | 'modelId' | 'windowing'>;
  readonly log?: Logger;
}

export interface GatewayStats {
  /** Inputs appended to partition streams. */
  appended: number;
  /** Inputs refused, by reason: cluster_backlog (lag cap), cluster_unavailable (Redis down). */
  refused: Record<string, number>;
  /** Predictions read from the partitions' output streams. */
  predictions: number;
  /** Whether the input connection is up. */
  redisUp: boolean;
  /** Stream closes, suspends and resumes waiting for Redis to come back (refusing them would leave streams open). */
  held: number;
  /** Per partition, as last looked at (every second): its owner (worker id, or null) and its lag in entries. */
  partitions: { owner: string | null; lag: number }[];
}

/** Predictions read per XREAD, and how long one blocks (ms) before it looks again. */
const READ_COUNT = 512;
const READ_BLOCK_MS = 1000;

/**
 * `braid serve --redis`: the server's pipeline, stateless. Each input goes to its stream's partition (XADD through
 * a fenced-free Lua append that refuses at the lag cap), binary payloads as they came; predictions come back from
 * every partition's output stream, which only the partitions' owners (workers) write, through fenced commits. The
 * server around it (protocol, resume, subscribers, metrics) is the one `braid serve` runs: refusals go back to the
 * producer as errors naming the reason.
 */
/**
 * How long Redis keeps a gateway's last append number per partition after its last append: ioredis re-sends what was
 * in flight within seconds of reconnecting, and a gateway that restarts numbers anew under another id.
 */
const SENDER_TTL_MS = 10 * 60_000;

/** Lifecycle controls held while Redis is away, at most (beyond it they are refused and counted as before). */
const MAX_HELD = 100_000;
const isLifecycle = (input: StreamInput): boolean =>
  'control' in input &&
  (input.control === 'close' || input.control === 'suspend' || input.control === 'resume');

export function createGateway(
  options: GatewayOptions,
): PredictionPipeline & { gatewayStats(): GatewayStats; close(): void } {
  const { redis, reader, partitions, lagCap, model } = options;
  const log = options.log ?? silentLogger;
  const keys = Array.from({ length: partitions }, (_, p) => partitionKeys(p));
  // This gateway's appends, numbered per partition, so an append ioredis re-sends after a lost reply is applied once.
  const sender = randomBytes(8).toString('hex');
  const senderKeys = keys.map((_, p) => senderKey(p, sender));
  const appends = keys.map(() => 0);
  const append = (input: StreamInput, p: number): Promise<string> => {
    const k = keys[p]!;
    const n = appends[p]!++;
    return redis.braidAppend(
      k.input,
      k.added,
      k.read,
      senderKeys[p]!,
      lagCap,
      n,
      SENDER_TTL_MS,
      ...encodeInput(input),
    );
  };
  const stats: GatewayStats = {
    appended: 0,
    refused: {},
    predictions: 0,
    redisUp: false,
    held: 0,
    partitions: [],
  };
  /**
   * A stream's close, suspend or resume that Redis could not take: the server sends it once (a producer that left,
   * a grace that ran out), so refused it would leave the stream open in its worker for good, holding the partition's
   * input from being trimmed. Kept, in order, and appended once Redis is back, before any new input is taken.
   */
  const held: StreamInput[] = [];
  const flushHeld = async () => {
    while (held.length > 0) {
      const input = held[0]!;
      await append(input, partitionOf(input.streamId, partitions));
      held.shift();
      stats.held = held.length;
      stats.appended++;
    }
  };
  // Input is taken only once the scripts are in Redis's cache (see loadScripts) and what was held is in, after every
  // reconnect; until both are done it is tried again every second (an append refused with an error reply, OOM).
  let coming: Promise<void> | undefined;
  const up = () =>
    (coming ??= loadScripts(redis)
      .then(flushHeld)
      .then(
        () => {
          stats.redisUp = true;
          log.info({ event: 'redis_ready' }, 'Redis connection ready: taking input');
        },
        (error: unknown) =>
          log.warn(
            { event: 'redis_not_ready', error: String(error), held: held.length },
            `Redis is connected but cannot take input yet (trying again): ${String(error)}`,
          ),
      )
      .finally(() => {
        coming = undefined;
      }));
  const retrying = setInterval(() => {
    if (redis.status === 'ready' && (!stats.redisUp || held.length > 0)) {
      stats.redisUp = false;
      void up();
    }
  }, 1000);
  retrying.unref();
  redis.on('ready', () => void up());
  redis.on('close', () => {
    if (stats.redisUp)
      log.warn({ event: 'redis_lost' }, 'Redis connection lost: refusing input, reconnecting');
    stats.redisUp = false;
  });
  redis.on('error', () => {});
  reader.on('error', () => {});
  // Connected at creation: the caller has loaded the scripts (startGateway does).
  stats.redisUp = redis.status === 'ready';

  // What /healthz and /metrics show of the cluster: each partition's owner and lag, looked at once a second.
  const look = async () => {
    if (!stats.redisUp) return;
    // Single-key GETs, sent at once: a pipeline of keys in different slots is refused by a Redis Cluster.
    const replies = await Promise.all(
      keys.flatMap((k) => [k.lease, k.added, k.read].map((key) => redis.get(key))),
    );
    const value = (i: number) => replies[i] ?? null;
    stats.partitions = keys.map((_, p) => ({
      owner: value(3 * p)?.split('/')[0] ?? null,
      lag: Number(value(3 * p + 1) ?? 0) - Number(value(3 * p + 2) ?? 0),
    }));
  };
  const looking = setInterval(() => void look().catch(() => undefined), 1000);
  looking.unref();

  return {
    ...model,
    gatewayStats: () => stats,
    close: () => {
      clearInterval(looking);
      clearInterval(retrying);
    },
    run: (input$, sinks = {}) =>
      new Observable<Prediction>((subscriber) => {
        const refuse = (input: StreamInput, reason: string, message: string) => {
          if (reason === 'cluster_unavailable' && isLifecycle(input) && held.length < MAX_HELD) {
            held.push(input);
            stats.held = held.length;
            return;
          }
          stats.refused[reason] = (stats.refused[reason] ?? 0) + 1;
          const r = refusalOf(input, reason, message);
          if (r) sinks.refused?.(r);
        };
        const inputs = input$.subscribe((input) => {
          if (!stats.redisUp)
            return refuse(input, 'cluster_unavailable', 'Redis is unavailable, input refused: not connected');
          const p = partitionOf(input.streamId, partitions);
          // Commands on one connection are applied in the order they were sent: a stream's entries keep its order.
          append(input, p).then(
            () => {
              stats.appended++;
            },
            (error: unknown) => {
              const why = error instanceof Error ? error.message : String(error);
              if (why.startsWith('BACKLOG'))
                refuse(
                  input,
                  'cluster_backlog',
                  `partition ${p} is ${why.slice(8)} entries behind (cap ${lagCap}): the workers are not keeping up, input refused`,
                );
              else refuse(input, 'cluster_unavailable', `Redis is unavailable, input refused: ${why}`);
            },
          );
        });
        let stopped = false;
        /**
         * Predictions: the outputs of `group`'s partitions from their current end on (a gateway serves what comes
         * from now), one blocking XREAD for all of them on `conn`.
         */
        const readPredictions = async (group: readonly string[], conn: BraidRedis) => {
          const ids = new Map<string, string>();
          while (!stopped) {
            try {
              if (ids.size === 0)
                for (const key of group) {
                  const last = (await conn.xrevrange(key, '+', '-', 'COUNT', 1)) as [string, string[]][];
                  ids.set(key, last[0]?.[0] ?? '0-0');
                }
              const reply = (await conn.xreadBuffer(
                'COUNT',
                READ_COUNT,
                'BLOCK',
                READ_BLOCK_MS,
                'STREAMS',
                ...ids.keys(),
                ...ids.values(),
              )) as [Buffer, [Buffer, Buffer[]][]][] | null;
              for (const [key, entries] of reply ?? []) {
                for (const [id, fields] of entries) {
                  ids.set(key.toString(), id.toString());
                  const value = fields[1];
                  if (value === undefined || stopped) continue;
                  const entry = decodePrediction(value);
                  // A stream's end follows its last prediction: the server then says `closed` to subscribers.
                  if (isStreamEnd(entry)) {
                    sinks.onStream?.({ streamId: entry.end, state: 'end' });
                    continue;
                  }
                  stats.predictions++;
                  subscriber.next(entry);
                }
              }
            } catch (error) {
              if (stopped) return;
              log.warn(
                {
                  event: 'prediction_read_failed',
                  error: error instanceof Error ? error.message : String(error),
                },
                'reading predictions from Redis failed, trying again',
              );
              await new Promise((r) => setTimeout(r, 500));
            }
          }
        };
        const outputs = keys.map((k) => k.output);
        // One XREAD over every partition's output on one server; a Redis Cluster refuses keys of several slots in
        // one command (CROSSSLOT), and a blocking read holds its connection, so there each partition has its own
        // reader — ioredis' Cluster client connects only to the node whose slots it reads.
        const extra: BraidRedis[] = [];
        if (reader.target.cluster)
          outputs.forEach((key, p) => {
            const conn = p === 0 ? reader : braidRedis(reader.target, 'queue');
            if (p > 0) {
              conn.on('error', () => {});
              extra.push(conn);
            }
            void readPredictions([key], conn);
          });
        else void readPredictions(outputs, reader);
        return () => {
          stopped = true;
          inputs.unsubscribe();
          for (const conn of extra) conn.disconnect();
        };
      }),
  };
}
