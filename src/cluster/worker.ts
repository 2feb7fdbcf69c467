import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { type Logger, silentLogger } from '../core/logger.js';
import type { PredictionPipelineRunner } from '../pipeline/prediction-pipeline.js';
import { assignedPartitions, membersKey, type PartitionKeys, partitionKeys } from './partition.js';
import { PartitionSession, type SessionCounters, zeroCounters } from './partition-session.js';
import type { BraidRedis } from './redis.js';

export interface WorkerOptions {
  readonly redis: BraidRedis;
  /** Connections for blocking reads, one per partition owned (made on demand). */
  readonly reader: () => BraidRedis;
  readonly partitions: number;
  /** A fresh pipeline per partition taken. */
  readonly pipeline: () => Promise<PredictionPipelineRunner>;
  /** A lease (and a membership) lapses this long after its last renewal (ms). */
  readonly leaseMs: number;
  readonly outputCap: number;
  readonly id?: string;
  readonly log?: Logger;
}

interface Owned {
  readonly token: string;
  readonly session: PartitionSession;
  readonly reader: BraidRedis;
}

/** What a worker has done since it started (its /metrics): its partitions' runs summed, ended ones included. */
export interface WorkerStats extends SessionCounters {
  /** Partitions taken (each a run from its checkpoint), given up on a rebalance, and lost (lease or failure). */
  takeovers: number;
  handovers: number;
  leaseLosses: number;
  leaseRenewals: number;
  /** Heartbeats and lease rounds that failed because Redis could not be reached. */
  redisErrors: number;
}

function addCounters(into: SessionCounters, from: SessionCounters): void {
  for (const key of Object.keys(from) as (keyof SessionCounters)[]) into[key] += from[key];
}

/**
 * `braid worker`: a member of the cluster (a heartbeat in a sorted set, on Redis's clock) that owns the partitions
 * assigned to it among the live members — partition p to the (p mod N)th member by id — through leases with
 * fencing tokens, renewed every third of their time. A partition no longer assigned to it (a member joined) is
 * committed and given up; one assigned and free (a member left, or its lease lapsed after a crash) is taken and run
 * from its checkpoint. A lease that cannot be renewed ends its session at once: its commits would be fenced anyway.
 */
export class ClusterWorker {
  readonly id: string;
  readonly #o: WorkerOptions;
  readonly #log: Logger;
  readonly #owned = new Map<number, Owned>();
  /** Partitions being taken (their pipelines built): stop() waits for them, so none starts after it. */
  readonly #starting = new Map<number, Promise<void>>();
  /** Partitions whose start failed: how often in a row, and when to try again (a pipeline failing to build). */
  readonly #failedStarts = new Map<number, { count: number; until: number }>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  #ticking = false;
  /** Counters of the partition runs that ended. */
  readonly #ended = zeroCounters();
  readonly #stats = { takeovers: 0, handovers: 0, leaseLosses: 0, leaseRenewals: 0, redisErrors: 0 };

  constructor(options: WorkerOptions) {
    this.#o = options;
    this.#log = options.log ?? silentLogger;
    this.id = options.id ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  }

  /** Partitions owned right now. */
  owned(): number[] {
    return [...this.#owned.keys()].sort((a, b) => a - b);
  }

  /** Counters since the worker started; the live runs' counters read now. */
  stats(): WorkerStats {
    const sum = { ...this.#ended };
    for (const owned of this.#owned.values()) addCounters(sum, owned.session.counters);
    return { ...sum, ...this.#stats };
  }

  /** Entries each owned partition's run has read (for its lag against the partition's `added`). */
  readCounts(): Map<number, number> {
    return new Map([...this.#owned].map(([p, o]) => [p, o.session.readCount]));
  }

  start(): void {
    const loop = async () => {
      await this.#tick();
      if (!this.#stopped) this.#timer = setTimeout(loop, Math.max(50, Math.floor(this.#o.leaseMs / 3)));
    };
    void loop();
  }

  /** Commits and gives up every partition, and leaves the membership. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    while (this.#ticking) await new Promise((r) => setTimeout(r, 10));
    await Promise.all(this.#starting.values());
    await Promise.all([...this.#owned.keys()].map((p) => this.#giveUp(p, true)));
    await this.#o.redis.braidMembers(membersKey(), this.id, -1).catch(() => undefined);
  }

  async #tick(): Promise<void> {
    if (this.#ticking || this.#stopped) return;
    this.#ticking = true;
    try {
      const { redis, leaseMs, partitions } = this.#o;
      const live = await redis.braidMembers(membersKey(), this.id, leaseMs);
      const mine = new Set(assignedPartitions(this.id, live, partitions));
      for (const [p, owned] of this.#owned) {
        if (!mine.has(p)) {
          this.#log.info(
            { event: 'partition_handover', partition: p },
            `partition ${p}: handing over (rebalance)`,
          );
          await this.#giveUp(p, true);
          continue;
        }
        const k = partitionKeys(p);
        const renewed = await redis.braidRenew(k.lease, k.fence, owned.token, leaseMs);
        if (renewed === 0) await this.#lost(p, 'lease lost (it lapsed, and another worker took it)');
        else {
          this.#stats.leaseRenewals += 1;
          if (renewed === 2) owned.session.leaseReclaimed('renewal');
        }
      }
      for (const p of mine) {
        if (this.#owned.has(p) || this.#starting.has(p)) continue;
        if ((this.#failedStarts.get(p)?.until ?? 0) > Date.now()) continue;
        const k = partitionKeys(p);
        const token = await redis.braidAcquire(k.lease, k.fence, this.id, leaseMs);
        if (token) this.#starting.set(p, this.#take(p, token));
      }
    } catch (error) {
      this.#stats.redisErrors += 1;
      // Redis away: nothing renews, so leases lapse and are fenced; the loop goes on and picks up when it is back.
      this.#log.warn(
        { event: 'worker_tick_failed', error: error instanceof Error ? error.message : String(error) },
        `worker ${this.id}: cannot reach Redis, waiting (${error instanceof Error ? error.message : String(error)})`,
      );
    } finally {
      this.#ticking = false;
    }
  }

  async #take(p: number, token: string): Promise<void> {
    const reader = this.#o.reader();
    const k = partitionKeys(p);
    try {
      const pipeline = await this.#o.pipeline();
      // Stopped while the pipeline was built: give the partition straight back instead of running it unrenewed.
      if (this.#stopped) return await this.#giveBack(k, token, reader);
      const session = new PartitionSession({
        partition: p,
        keys: k,
        redis: this.#o.redis,
        reader,
        token,
        leaseMs: this.#o.leaseMs,
        pipeline,
        log: this.#log,
        outputCap: this.#o.outputCap,
        ended: () => void this.#lost(p, 'session ended'),
      });
      this.#owned.set(p, { token, session, reader });
      this.#stats.takeovers += 1;
      await session.start();
      this.#failedStarts.delete(p);
    } catch (error) {
      const failures = (this.#failedStarts.get(p)?.count ?? 0) + 1;
      const retryMs = Math.min(60_000, this.#o.leaseMs * 2 ** (failures - 1));
      this.#failedStarts.set(p, { count: failures, until: Date.now() + retryMs });
      this.#log.error(
        {
          event: 'partition_failed',
          partition: p,
          error: error instanceof Error ? error.message : String(error),
        },
        `partition ${p}: could not start (trying again in ${retryMs} ms): ${error instanceof Error ? error.message : String(error)}`,
      );
      // One that never ran is given back here: giveUp knows only partitions it runs.
      if (this.#owned.has(p)) await this.#giveUp(p, false);
      else await this.#giveBack(k, token, reader);
    } finally {
      this.#starting.delete(p);
    }
  }

  /** Closes a partition's reader and releases its lease (after its run, or when it never ran). */
  async #giveBack(k: PartitionKeys, token: string, reader: BraidRedis): Promise<void> {
    reader.disconnect();
    await this.#o.redis.braidRelease(k.lease, k.fence, token).catch(() => undefined);
  }

  async #lost(p: number, why: string): Promise<void> {
    const owned = this.#owned.get(p);
    if (!owned) return;
    this.#owned.delete(p);
    this.#stats.leaseLosses += 1;
    this.#log.warn({ event: 'partition_lost', partition: p, why }, `partition ${p}: ${why}`);
    await owned.session.stop(false);
    addCounters(this.#ended, owned.session.counters);
    owned.reader.disconnect();
  }

  async #giveUp(p: number, flush: boolean): Promise<void> {
    const owned = this.#owned.get(p);
    if (!owned) return;
    this.#owned.delete(p);
    if (flush) this.#stats.handovers += 1;
    await owned.session.stop(flush);
    addCounters(this.#ended, owned.session.counters);
    await this.#giveBack(partitionKeys(p), owned.token, owned.reader);
  }
}
