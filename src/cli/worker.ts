import { type Command, Option } from 'commander';
import { partitionsKey } from '../cluster/partition.js';
import { braidRedis, checkPartitions, connectRedis } from '../cluster/redis.js';
import { CLUSTER_WINDOWING } from '../cluster/windowing.js';
import { ClusterWorker } from '../cluster/worker.js';
import { REPLAY_QUEUE } from '../pipeline/prediction-pipeline.js';
import { partitionsOption } from './cluster-options.js';
import { commandLogger } from './logging.js';
import {
  createPipelineFromOptions,
  durationOption,
  type ModelCliOptions,
  positiveInteger,
  withModelOptions,
} from './model-options.js';

interface WorkerCliOptions extends ModelCliOptions {
  redis: string;
  partitions: number;
  lease: number;
  outputCap: number;
}

export function registerWorkerCommand(program: Command): void {
  withModelOptions(
    program
      .command('worker')
      .description(
        'a cluster worker: owns partitions of the input on Redis Streams and runs the pipeline on them',
      )
      .requiredOption('--redis <url>', "the cluster's Redis (redis://HOST:PORT)")
      .addOption(partitionsOption())
      .addOption(
        new Option(
          '--lease <duration>',
          'a partition of a worker that stops renewing is taken over after this long',
        )
          .argParser(durationOption)
          .default(5_000_000, '5s'),
      )
      .addOption(
        new Option('--output-cap <n>', 'committed predictions kept per partition for gateways to read')
          .argParser(positiveInteger)
          .default(100_000),
      ),
    // One backend everywhere: a partition taken over is rebuilt on another worker, and must come out the same.
    'cpu-fused',
  ).action(async (options: WorkerCliOptions, command: Command) => {
    const log = commandLogger(command);
    const redis = await connectRedis(options.redis, 'queue');
    await checkPartitions(redis, partitionsKey(), options.partitions);
    // The model is checked before the worker joins: a worker that cannot run it must not take partitions.
    const first = await createPipelineFromOptions(options, log, REPLAY_QUEUE, {
      windowing: CLUSTER_WINDOWING,
    });
    let spare: typeof first | undefined = first;
    const worker = new ClusterWorker({
      redis,
      reader: () => {
        const r = braidRedis(options.redis, 'queue');
        r.on('error', () => {});
        void r.connect().catch(() => undefined);
        return r;
      },
      partitions: options.partitions,
      leaseMs: options.lease / 1000,
      outputCap: options.outputCap,
      log,
      pipeline: async () => {
        const p =
          spare ??
          (await createPipelineFromOptions(options, log, REPLAY_QUEUE, { windowing: CLUSTER_WINDOWING }));
        spare = undefined;
        return p;
      },
    });
    redis.on('error', () => {});
    worker.start();
    log.info(
      {
        event: 'worker',
        id: worker.id,
        redis: options.redis,
        partitions: options.partitions,
        model: first.modelId,
      },
      `worker ${worker.id} on ${options.redis} (model ${first.modelId}, ${options.partitions} partitions)`,
    );
    const shutdown = async (signal: string) => {
      log.info({ event: 'shutdown', signal }, `${signal}, handing over partitions`);
      // Redis may be gone (its commands would wait for it forever): give the hand-over one lease's time, no more;
      // what was not committed is rebuilt by the next owner once the leases lapse.
      const deadline = new Promise<'late'>((r) => setTimeout(() => r('late'), options.lease / 1000).unref());
      const done = await Promise.race([worker.stop().then(() => 'done' as const), deadline]);
      if (done === 'late')
        log.warn(
          { event: 'handover_timeout' },
          'could not hand the partitions over in time: their leases will lapse',
        );
      redis.disconnect();
      process.exit(0);
    };
    process.once('SIGINT', () => void shutdown('SIGINT'));
    process.once('SIGTERM', () => void shutdown('SIGTERM'));
  });
}
