import { createServer } from 'node:http';
import { type Command, Option } from 'commander';
import { partitionsKey } from '../cluster/partition.js';
import { braidRedis, checkPartitions, connectRedis } from '../cluster/redis.js';
import { CLUSTER_WINDOWING } from '../cluster/windowing.js';
import { ClusterWorker } from '../cluster/worker.js';
import { workerMetrics } from '../cluster/worker-metrics.js';
import { InvalidOptionError } from '../core/errors.js';
import { REPLAY_QUEUE } from '../pipeline/prediction-pipeline.js';
import { isLoopbackHost, RequestGuard } from '../server/request-guard.js';
import { partitionsOption } from './cluster-options.js';
import { commandLogger } from './logging.js';
import {
  createPipelineFromOptions,
  durationOption,
  type ModelCliOptions,
  portNumber,
  positiveInteger,
  readToken,
  withModelOptions,
} from './model-options.js';

interface WorkerCliOptions extends ModelCliOptions {
  redis: string;
  partitions: number;
  lease: number;
  outputCap: number;
  metricsPort?: number;
  metricsHost: string;
  token?: string;
  tokenFile?: string;
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
      )
      .addOption(
        new Option(
          '--metrics-port <port>',
          'serve /metrics (Prometheus) and /healthz on this port (0 picks one)',
        ).argParser(portNumber),
      )
      .option(
        '--metrics-host <host>',
        'address /metrics binds to (anything but loopback needs --token)',
        '127.0.0.1',
      )
      .option('--token <token>', 'shared secret required by /metrics (better: BRAID_TOKEN)')
      .option('--token-file <file>', 'read the token from this file (kept out of `ps` and the environment)'),
    // One backend everywhere: a partition taken over is rebuilt on another worker, and must come out the same.
    'cpu-fused',
  ).action(async (options: WorkerCliOptions, command: Command) => {
    const log = commandLogger(command);
    const token = options.tokenFile !== undefined ? readToken(options.tokenFile) : options.token;
    if (
      options.metricsPort !== undefined &&
      !isLoopbackHost(options.metricsHost) &&
      (token === undefined || token.length < 8)
    )
      throw new InvalidOptionError(
        'token',
        `binding /metrics to ${options.metricsHost} exposes it beyond this machine: pass --token, BRAID_TOKEN or --token-file (8+ characters)`,
      );
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
        const r = braidRedis(redis.target, 'queue');
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
    const metricsServer =
      options.metricsPort === undefined
        ? undefined
        : await serveMetrics(worker, redis, options.metricsHost, options.metricsPort, token, log);
    log.info(
      {
        event: 'worker',
        id: worker.id,
        redis: options.redis,
        redisCluster: redis.target.cluster,
        partitions: options.partitions,
        model: first.modelId,
      },
      `worker ${worker.id} on ${options.redis}${redis.target.cluster ? ' (a Redis Cluster)' : ''} (model ${first.modelId}, ${options.partitions} partitions)`,
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
      metricsServer?.close();
      redis.disconnect();
      process.exit(0);
    };
    process.once('SIGINT', () => void shutdown('SIGINT'));
    process.once('SIGTERM', () => void shutdown('SIGTERM'));
  });
}

/** The worker's /metrics and /healthz: the RequestGuard serve uses (loopback Host names, or the token). */
async function serveMetrics(
  worker: ClusterWorker,
  redis: Parameters<typeof workerMetrics>[1],
  host: string,
  port: number,
  token: string | undefined,
  log: ReturnType<typeof commandLogger>,
) {
  const registry = workerMetrics(worker, redis);
  let bound = 0;
  const guard = new RequestGuard({ bindHost: host, port: () => bound, token });
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const refusal = guard.check(req, url, true);
    if (refusal) {
      res
        .writeHead(refusal.status, { 'content-type': 'text/plain; charset=utf-8' })
        .end(`${refusal.message}\n`);
      return;
    }
    if (url.pathname === '/metrics')
      return void registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (error: unknown) => res.writeHead(500).end(String(error)),
      );
    if (url.pathname === '/healthz') {
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ worker: worker.id, partitions: worker.owned() }));
      return;
    }
    res.writeHead(404).end('not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  bound = (server.address() as { port: number }).port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${bound}`;
  log.info({ event: 'worker_metrics', url }, `worker metrics on ${url}/metrics`);
  return server;
}
