import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { partitionKeys } from '../../src/cluster/partition.js';
import { type BraidRedis, braidRedis, connectRedis } from '../../src/cluster/redis.js';
import { ClusterWorker } from '../../src/cluster/worker.js';
import { PredictionPipelineRunner } from '../../src/pipeline/prediction-pipeline.js';
import { untrainedModel } from '../helpers/demo-pipeline.js';
import { hasRedis, type RedisServer, startRedis } from '../helpers/redis-server.js';

/**
 * A worker whose partitions do not start as they should, against a real redis-server: a pipeline that fails to
 * build leaves no connection and no lease behind on any try, and a stop() while one is being built gives the
 * partition up instead of leaving it to run unrenewed.
 */

const redisHere = hasRedis();
let server: RedisServer;
let redis: BraidRedis;
beforeAll(async () => {
  if (!redisHere) return;
  server = await startRedis();
  redis = await connectRedis(server.url, 'queue');
});
afterAll(async () => {
  redis?.disconnect();
  await server?.close();
});

const clients = async () =>
  String(await redis.client('LIST'))
    .trim()
    .split('\n').length;
const until = async (done: () => Promise<boolean> | boolean, tries = 2000) => {
  for (let i = 0; i < tries && !(await done()); i++) await new Promise((r) => setTimeout(r, 5));
};
/** As `braid worker` makes them: connected at once. */
const reader = () => {
  const r = braidRedis(redis.target, 'queue');
  r.on('error', () => {});
  void r.connect().catch(() => undefined);
  return r;
};

describe.skipIf(!redisHere)('a cluster worker whose partitions fail to start (real redis-server)', () => {
  it('gives back the reader and the lease of every failed start, and tries again later, not on every round', async () => {
    const baseline = await clients();
    const builds: number[] = [];
    const worker = new ClusterWorker({
      redis,
      reader,
      partitions: 1,
      leaseMs: 100,
      outputCap: 1000,
      id: 'failing',
      pipeline: async () => {
        builds.push(Date.now());
        throw new Error('cannot build the pipeline');
      },
    });
    worker.start();
    // Backing off 100, 200, 400 ms between tries (a round every 50 ms would try again each time the lease is free).
    await until(() => builds.length >= 4);
    expect(builds[3]! - builds[2]!).toBeGreaterThan(300);
    await until(
      async () => (await clients()) === baseline && (await redis.get(partitionKeys(0).lease)) === null,
    );
    expect(await clients()).toBe(baseline);
    expect(await redis.get(partitionKeys(0).lease)).toBeNull();
    expect(worker.owned()).toEqual([]);
    await worker.stop();
  });

  it('stop() while a partition is being taken waits for it and gives it up', async () => {
    let built!: (runner: PredictionPipelineRunner) => void;
    let building!: () => void;
    const started = new Promise<void>((resolve) => (building = resolve));
    const worker = new ClusterWorker({
      redis,
      reader,
      partitions: 1,
      leaseMs: 60_000,
      outputCap: 1000,
      id: 'stopping',
      pipeline: () =>
        new Promise<PredictionPipelineRunner>((resolve) => {
          building();
          built = resolve;
        }),
    });
    worker.start();
    await started;
    expect(await redis.get(partitionKeys(0).lease)).toMatch(/^stopping\//);
    const stopping = worker.stop();
    // The pipeline is ready only after stop() began.
    built(await PredictionPipelineRunner.create({ model: untrainedModel(), backend: 'cpu-fused' }));
    await stopping;
    expect(worker.owned()).toEqual([]);
    // Given back at once, not left to lapse after the 60 s lease.
    expect(await redis.get(partitionKeys(0).lease)).toBeNull();
  });
});
