// Load benchmark: N producer streams sent over /ingest in real time, in the format the demo page sends (16 kHz PCM16
// in 10 ms frames, raw gray 64x48 at 10 fps, a text event every ~1.7 s), M subscribers on /subscribe, all over
// loopback against `braid serve` running in its own process, the subscribers in a third process. Reports end-to-end latency (window end -> subscriber
// receives) p50/p99 and everything dropped. The producers and subscribers share the machine with the server.
// Run: npx tsx bench/server.ts [streams...]
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { wallClockMicros } from '../src/core/time.js';
import { saveModel } from '../src/model/model-io.js';
import { untrainedModel } from '../test/helpers/demo-pipeline.js';
import { openProducers, sendDue, startServe } from './load.js';

const SECONDS = 20;
const WARMUP_S = 4;
const SUBSCRIBERS = 2;

async function measure(streams: number, port: number) {
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
  let tick = 0;
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      tick = sendDue(producers, t0, tick);
      if (tick >= SECONDS * 100) {
        clearInterval(timer);
        resolve();
      }
    }, 5);
  });
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
  '| streams | predictions received / expected | latency p50 ms | p99 ms | max ms | dropped (subscribers) | dropped/late/rejected (server) |',
);
console.log('|---|---|---|---|---|---|---|');
let port = 18_400;
for (const streams of counts.length > 0 ? counts : [16, 64, 256]) {
  const child = await startServe({ port: ++port, model: modelDir });
  try {
    const r = await measure(streams, port);
    console.log(
      `| ${streams} | ${r.predictions} / ~${r.expected} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.max.toFixed(0)} | ${r.subscriberDropped} | ${r.serverDropped} |`,
    );
  } finally {
    child.kill('SIGINT');
  }
}
