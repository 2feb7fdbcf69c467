import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { partitionKeys } from './partition.js';
import type { BraidRedis } from './redis.js';
import type { ClusterWorker, WorkerStats } from './worker.js';

/** A counter family read from the worker's cumulative stats at each scrape. */
const COUNTERS: readonly { name: string; help: string; key: keyof WorkerStats }[] = [
  {
    name: 'braid_worker_takeovers_total',
    help: 'Partitions taken and run from their checkpoint',
    key: 'takeovers',
  },
  {
    name: 'braid_worker_handovers_total',
    help: 'Partitions committed and given up (a rebalance, or the worker stopping)',
    key: 'handovers',
  },
  {
    name: 'braid_worker_lease_renewals_total',
    help: 'Partition leases renewed (every third of --lease per partition owned)',
    key: 'leaseRenewals',
  },
  {
    name: 'braid_worker_lease_losses_total',
    help: 'Partitions lost: a lease found taken by another worker, a fenced commit, or a failed run',
    key: 'leaseLosses',
  },
  {
    name: 'braid_worker_lease_reclaims_total',
    help: 'Leases found lapsed (the worker stalled past --lease) and taken back, nobody having taken them meanwhile',
    key: 'leaseReclaims',
  },
  {
    name: 'braid_worker_fenced_commits_total',
    help: 'Commits refused because another worker holds the lease now (nothing of them was written)',
    key: 'fencedCommits',
  },
  {
    name: 'braid_worker_commits_total',
    help: 'Commits of predictions and checkpoints (one Lua call each)',
    key: 'commits',
  },
  {
    name: 'braid_worker_commit_retries_total',
    help: 'Commits sent again after they failed (Redis away)',
    key: 'commitRetries',
  },
  {
    name: 'braid_worker_entries_read_total',
    help: 'Input entries read, those a takeover reads again included',
    key: 'entriesRead',
  },
  { name: 'braid_worker_predictions_total', help: 'Predictions committed', key: 'predictions' },
  {
    name: 'braid_worker_streams_resumed_total',
    help: "Open stream sessions a takeover carried on from their checkpoint's cut (GRU and aligner state restored)",
    key: 'streamsResumed',
  },
  {
    name: 'braid_worker_streams_rebuilt_total',
    help: 'Open stream sessions a takeover ran again from their first entry (they had no cut)',
    key: 'streamsRebuilt',
  },
  {
    name: 'braid_worker_windows_skipped_total',
    help: "Windows a takeover made again up to a cut's last committed one, kept from the model (committed before)",
    key: 'windowsSkipped',
  },
  {
    name: 'braid_worker_cuts_frozen_total',
    help: 'Stream sessions whose checkpoint cut stopped advancing: a window got no prediction (should stay 0)',
    key: 'cutsFrozen',
  },
  {
    name: 'braid_worker_redis_errors_total',
    help: 'Membership and lease rounds that failed because Redis could not be reached',
    key: 'redisErrors',
  },
];

/**
 * A worker's /metrics (`braid worker --metrics-port N`), in a registry of its own: the counters of WorkerStats, the
 * partitions it owns, each one's lag (entries appended to it that its run has not read yet, asked of Redis at each
 * scrape), the Redis reconnects of its command connection, and the process's own metrics.
 */
export function workerMetrics(worker: ClusterWorker, redis: BraidRedis): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const seen = new Map<string, number>();
  for (const family of COUNTERS)
    new Counter({
      name: family.name,
      help: family.help,
      registers: [registry],
      collect() {
        const n = worker.stats()[family.key];
        this.inc(n - (seen.get(family.name) ?? 0));
        seen.set(family.name, n);
      },
    });
  let reconnects = 0;
  redis.on('reconnecting', () => {
    reconnects += 1;
  });
  let counted = 0;
  new Counter({
    name: 'braid_worker_redis_reconnects_total',
    help: "Reconnects of the worker's Redis command connection (ioredis, with backoff)",
    registers: [registry],
    collect() {
      this.inc(reconnects - counted);
      counted = reconnects;
    },
  });
  new Gauge({
    name: 'braid_worker_partitions_owned',
    help: 'Partitions this worker holds the lease of',
    registers: [registry],
    collect() {
      this.set(worker.owned().length);
    },
  });
  new Gauge({
    name: 'braid_worker_partition_lag',
    help: 'Entries appended to an owned partition that its run has not read yet',
    labelNames: ['partition'],
    registers: [registry],
    async collect() {
      this.reset();
      const reads = worker.readCounts();
      if (reads.size === 0) return;
      const partitions = [...reads.keys()];
      // One GET a partition (their keys are in different Redis Cluster slots); a scrape while Redis is away shows
      // no lag rather than failing.
      const added = await Promise.all(partitions.map((p) => redis.get(partitionKeys(p).added))).catch(
        () => undefined,
      );
      if (added === undefined) return;
      partitions.forEach((p, i) => {
        this.set({ partition: String(p) }, Math.max(0, Number(added[i] ?? 0) - (reads.get(p) ?? 0)));
      });
    },
  });
  return registry;
}
