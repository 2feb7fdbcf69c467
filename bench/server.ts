// Load benchmark: N producer streams sent over /ingest in real time, in the format the demo page sends (16 kHz PCM16
// in 10 ms frames, raw gray 64x48 at 10 fps, a text event every ~1.7 s), M subscribers on /subscribe, all over
// loopback against `braid serve` running in its own process, the subscribers in a third process. Reports end-to-end latency (window end -> subscriber
// receives) p50/p99, everything dropped and the CPU each process used (cores busy, 100 % = one core). The producers
// and subscribers share the machine with the server. Each stream count runs twice in the same run: `--workers 1`
// (everything in the server's main thread: the baseline) and `--workers <cores>` (streams sharded over threads).
// Run: npm run bench -- server [streams...]   (default 16 256 512 1024)
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { wallClockMicros } from '../src/core/time.js';
import { saveModel } from '../src/model/model-io.js';
import { untrainedModel } from '../test/helpers/demo-pipeline.js';
import { openProducers, sendFor, startServe } from './load.js';

const SECONDS = 20;
const WARMUP_S = 4;
const SUBSCRIBERS = 2;

/** CPU seconds (user + system, all threads) a process has used, from /proc (Linux). */
function cpuSecondsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const ownCpuSeconds = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
};

async function measure(streams: number, port: number, serverPid: number) {
  const base = `ws://127.0.0.1:${port}`;
  const start = wallClockMicros();
  const subscribers = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'bench/server-subscribers.ts',
      base,
      String(SUBSCRIBERS),
      String(start + WARMUP_S * 1e6),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let subscriberOutput = '';
  subscribers.stdout!.on('data', (d) => (subscriberOutput += String(d)));
  await new Promise<void>((resolve) => {
    const check = () => (subscriberOutput.includes('ready') ? resolve() : setTimeout(check, 20));
    check();
  });
  const producers = await openProducers(base, streams);
  const t0 = wallClockMicros();
  const cpu0 = {
    server: cpuSecondsOf(serverPid),
    load: ownCpuSeconds(),
    subscribers: cpuSecondsOf(subscribers.pid!),
  };
  await sendFor(producers, t0, SECONDS);
  const wall = (wallClockMicros() - t0) / 1e6;
  const busy = {
    server: (cpuSecondsOf(serverPid) - cpu0.server) / wall,
    load: (ownCpuSeconds() - cpu0.load) / wall,
    subscribers: (cpuSecondsOf(subscribers.pid!) - cpu0.subscribers) / wall,
  };
  await new Promise((r) => setTimeout(r, 1500));
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const sum = (re: RegExp) => [...metrics.matchAll(re)].reduce((a, m) => a + Number(m[1]), 0);
  const serverDropped =
    sum(/^braid_(?:rejected|late_events)_total\{[^}]*\} (\d+)/gm) +
    sum(/braid_ingest_rejected_total\{[^}]*\} (\d+)/g) +
    sum(/braid_subscriber_dropped_total (\d+)/g);
  for (const ws of producers) ws.close();
  const exited = new Promise((r) => subscribers.once('exit', r));
  subscribers.kill('SIGINT');
  await exited;
  const result = JSON.parse(subscriberOutput.slice(subscriberOutput.indexOf('{'))) as {
    latencies: number[];
    predictions: number;
    dropped: number;
  };
  const { latencies, predictions } = result;
  const subscriberDropped = result.dropped;
  latencies.sort((a, b) => a - b);
  const q = (p: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? Number.NaN;
  const expected = streams * (SECONDS - WARMUP_S) * 2 * SUBSCRIBERS;
  return {
    p50: q(0.5),
    p99: q(0.99),
    max: latencies.at(-1) ?? Number.NaN,
    predictions,
    expected,
    subscriberDropped,
    serverDropped,
    busy,
  };
}

const dir = mkdtempSync(join(tmpdir(), 'braid-bench-server-'));
const modelDir = existsSync('models/demo') ? 'models/demo' : join(dir, 'model');
if (!existsSync('models/demo')) await saveModel(untrainedModel(), modelDir);
const counts = process.argv.slice(2).map(Number);
console.log(
  `model: ${modelDir}; ${SUBSCRIBERS} subscribers (all streams each); ${SECONDS} s per run, first ${WARMUP_S} s not counted\n`,
);
console.log(
  '| streams | workers | predictions received / expected | latency p50 ms | p99 ms | max ms | dropped (subscribers) | dropped/late/rejected (server) | CPU server | CPU load generator | CPU subscribers |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
const pct = (x: number) => `${Math.round(x * 100)} %`;
let port = 18_400;
const cores = availableParallelism();
for (const streams of counts.length > 0 ? counts : [16, 256, 512, 1024])
  for (const workers of [...new Set([1, cores])]) {
    const child = await startServe({ port: ++port, model: modelDir, args: ['--workers', String(workers)] });
    try {
      const r = await measure(streams, port, child.pid!);
      console.log(
        `| ${streams} | ${workers} | ${r.predictions} / ~${r.expected} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.max.toFixed(0)} | ${r.subscriberDropped} | ${r.serverDropped} | ${pct(r.busy.server)} | ${pct(r.busy.load)} | ${pct(r.busy.subscribers)} |`,
      );
    } finally {
      child.kill('SIGINT');
    }
  }
