// Cluster benchmark: the load of bench/server.ts (N real-time producers in the demo page's format, 2 subscribers)
// against the single-process `braid serve` and against a cluster on this machine — a redis-server (appendonly yes,
// appendfsync always), one gateway (`serve --redis`) and 1, 2 or 4 workers — in the same run, so the cost Redis adds
// reads against the same baseline. Every process shares the machine's cores with the others and with the load.
// Run: npx tsx bench/cluster.ts [streams]
import { type ChildProcess, spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { type RedisServer, startRedis } from '../test/helpers/redis-server.js';
import { measureLoad, startServe } from './load.js';

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 20);
const WARMUP_S = 4;
const SUBSCRIBERS = 2;
const MODEL = 'models/demo';
const PARTITIONS = 16;

function waitForLine(child: ChildProcess, text: string, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let log = '';
    child.stderr!.on('data', (d) => {
      log += String(d);
      if (log.includes(text)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`${what} exited with ${code}: ${log}`)));
  });
}

async function startWorker(url: string): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'src/cli/run.ts', 'worker', '--redis', url, '--model', MODEL, '--lease', '2s'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  await waitForLine(child, '"event":"worker"', 'worker');
  return child;
}

/** Every partition owned, by the expected number of workers (the assignment has settled). */
async function settled(url: string, workers: number): Promise<void> {
  const redis = new Redis(url);
  try {
    for (;;) {
      const leases = await Promise.all(
        Array.from({ length: PARTITIONS }, (_, p) => redis.get(`braid:{${p}}:lease`)),
      );
      const owners = new Set(leases.map((l) => l?.split('/')[0]));
      if (leases.every(Boolean) && owners.size === workers) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    redis.disconnect();
  }
}

const stop = async (children: readonly ChildProcess[]) => {
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null) return resolve();
          c.once('exit', () => resolve());
          c.kill('SIGINT');
        }),
    ),
  );
};

const streams = Number(process.argv[2] ?? 64);
console.log(
  `model: ${MODEL}; ${streams} real-time streams, ${SUBSCRIBERS} subscribers (all streams each); ${SECONDS} s per run, first ${WARMUP_S} s not counted; cluster: ${PARTITIONS} partitions, redis-server with appendfsync always, one gateway\n`,
);
console.log(
  '| setup | predictions/s (per subscriber) | received / expected | latency p50 ms | p99 ms | max ms | dropped (subscribers) | dropped/late/rejected (server) |',
);
console.log('|---|---|---|---|---|---|---|---|');
let port = 18_600;
for (const workers of [0, 1, 2, 4]) {
  const children: ChildProcess[] = [];
  let redis: RedisServer | undefined;
  try {
    const serverPort = ++port;
    let args: string[] = [];
    if (workers > 0) {
      redis = await startRedis();
      const { url } = redis;
      for (let i = 0; i < workers; i++) children.push(await startWorker(url));
      await settled(url, workers);
      args = ['--redis', url];
    }
    children.unshift(await startServe({ port: serverPort, model: MODEL, args }));
    const r = await measureLoad(streams, serverPort, {
      seconds: SECONDS,
      warmupS: WARMUP_S,
      subscribers: SUBSCRIBERS,
    });
    const rate = r.predictions / SUBSCRIBERS / (SECONDS - WARMUP_S);
    const setup =
      workers === 0 ? 'serve (one process)' : `gateway + ${workers} worker${workers > 1 ? 's' : ''}`;
    console.log(
      `| ${setup} | ${rate.toFixed(1)} | ${r.predictions} / ~${r.expected} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.max.toFixed(0)} | ${r.subscriberDropped} | ${r.serverDropped} |`,
    );
  } finally {
    await stop(children);
    await redis?.close();
  }
}
