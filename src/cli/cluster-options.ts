import type { Command } from 'commander';
import { Option } from 'commander';
import { Counter, Gauge, type Registry } from 'prom-client';
import { createGateway, type GatewayStats } from '../cluster/gateway.js';
import { DEFAULT_PARTITIONS, partitionsKey } from '../cluster/partition.js';
import { braidRedis, checkPartitions, connectRedis, loadScripts } from '../cluster/redis.js';
import type { Logger } from '../core/logger.js';
import type { PredictionPipeline } from '../server/pipeline.js';
import { positiveInteger } from './model-options.js';

export const DEFAULT_LAG_CAP = 20_000;

/** --partitions, shared by `serve --redis` and `worker`. */
export function partitionsOption(): Option {
  return new Option('--partitions <n>', 'partitions the cluster splits streams into (the same everywhere)')
    .argParser(positiveInteger)
    .default(DEFAULT_PARTITIONS);
}

export function withGatewayOptions(command: Command): Command {
  return command
    .option('--redis <url>', 'run as a cluster gateway: input to Redis Streams, predictions from the workers')
    .addOption(partitionsOption())
    .addOption(
      new Option('--lag-cap <n>', 'input entries a partition may hold that no worker has committed past')
        .argParser(positiveInteger)
        .default(DEFAULT_LAG_CAP),
    );
}

/** The gateway's pipeline for `braid serve --redis URL`: fails (exit 1) at once when Redis is not there. */
export async function startGateway(
  url: string,
  partitions: number,
  lagCap: number,
  model: Pick<PredictionPipeline, 'labels' | 'inputs' | 'modelId' | 'windowing'>,
  log: Logger,
) {
  const redis = await connectRedis(url, 'refuse');
  await checkPartitions(redis, partitionsKey(), partitions);
  await loadScripts(redis);
  const reader = braidRedis(redis.target, 'queue');
  await reader.connect();
  const gateway = createGateway({ redis, reader, partitions, lagCap, model, log });
  log.info(
    { event: 'gateway', redis: url, redisCluster: redis.target.cluster, partitions, lagCap },
    `cluster gateway on ${url}${redis.target.cluster ? ' (a Redis Cluster)' : ''}: ${partitions} partitions, lag cap ${lagCap} entries`,
  );
  return {
    pipeline: gateway as PredictionPipeline,
    health: () => {
      const s = gateway.gatewayStats();
      const owners = new Set(s.partitions.map((p) => p.owner).filter((o) => o !== null));
      return {
        cluster: {
          redis: s.redisUp ? 'up' : 'down',
          partitions,
          lagCap,
          workers: owners.size,
          unowned: s.partitions.filter((p) => p.owner === null).length,
          maxLag: Math.max(0, ...s.partitions.map((p) => p.lag)),
          refused: s.refused,
        },
      };
    },
    registerMetrics: (registry: Registry) => registerGatewayMetrics(registry, gateway.gatewayStats),
    close: () => {
      gateway.close();
      redis.disconnect();
      reader.disconnect();
    },
  };
}

function registerGatewayMetrics(registry: Registry, stats: () => GatewayStats): void {
  new Gauge({
    name: 'braid_cluster_partition_lag',
    help: 'Input entries of a partition that no worker has committed past (looked at once a second)',
    labelNames: ['partition'],
    registers: [registry],
    collect() {
      stats().partitions.forEach((p, i) => {
        this.set({ partition: String(i) }, p.lag);
      });
    },
  });
  new Gauge({
    name: 'braid_cluster_partition_owned',
    help: '1 for a partition a worker holds the lease of, 0 for one nobody owns (looked at once a second)',
    labelNames: ['partition'],
    registers: [registry],
    collect() {
      stats().partitions.forEach((p, i) => {
        this.set({ partition: String(i) }, p.owner === null ? 0 : 1);
      });
    },
  });
  new Gauge({
    name: 'braid_cluster_held_controls',
    help: 'Stream closes, suspends and resumes the gateway holds until Redis is back (appended then, before new input)',
    registers: [registry],
    collect() {
      this.set(stats().held);
    },
  });
  new Gauge({
    name: 'braid_cluster_redis_up',
    help: '1 while the gateway is connected to Redis (input is refused otherwise)',
    registers: [registry],
    collect() {
      this.set(stats().redisUp ? 1 : 0);
    },
  });
  let appended = 0;
  new Counter({
    name: 'braid_cluster_appended_total',
    help: 'Inputs appended to partition streams',
    registers: [registry],
    collect() {
      const n = stats().appended;
      this.inc(n - appended);
      appended = n;
    },
  });
  let predictions = 0;
  new Counter({
    name: 'braid_cluster_predictions_read_total',
    help: 'Committed predictions read from the partitions',
    registers: [registry],
    collect() {
      const n = stats().predictions;
      this.inc(n - predictions);
      predictions = n;
    },
  });
  const seen = new Map<string, number>();
  new Counter({
    name: 'braid_cluster_refused_total',
    help: 'Inputs the gateway refused, by reason: cluster_backlog (a partition at its lag cap), cluster_unavailable (Redis down)',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      for (const [reason, n] of Object.entries(stats().refused)) {
        const delta = n - (seen.get(reason) ?? 0);
        if (delta > 0) this.inc({ reason }, delta);
        seen.set(reason, n);
      }
    },
  });
}
