// Load benchmark: N producer streams sent over /ingest in real time, in the format the demo page sends (16 kHz PCM16
// in 10 ms frames, raw gray 64x48 at 10 fps, a text event every ~1.7 s), M subscribers on /subscribe, all over
// loopback against `braid serve` running in its own process, the subscribers in a third process. Reports end-to-end latency (window end -> subscriber
// receives) p50/p99 and everything dropped. The producers and subscribers share the machine with the server.
// Run: npx tsx bench/server.ts [streams...]
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { wallClockMicros } from '../src/core/time.js';
import { saveModel } from '../src/model/model-io.js';
import { encodeFrame } from '../src/server/protocol.js';
import { untrainedModel } from '../test/helpers/demo-pipeline.js';

const SECONDS = 20;
const WARMUP_S = 4;
const SUBSCRIBERS = 2;

async function startServe(modelDir: string, port: number): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'src/cli/run.ts',
      'serve',
      '--port',
      String(port),
      '--model',
      modelDir,
      '--backend',
      'cpu-fused',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  await new Promise<void>((resolve, reject) => {
    let log = '';
    child.stderr!.on('data', (d) => {
      log += String(d);
      if (log.includes('serving on')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${log}`)));
  });
  return child;
}

async function open(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url);
  await new Promise((r, j) => {
    ws.once('open', r);
    ws.once('error', j);
  });
  return ws;
}

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
  const producers = await Promise.all(
    Array.from({ length: streams }, async (_, i) => {
      const ws = await open(`${base}/ingest`);
      ws.send(
        JSON.stringify({
          type: 'hello',
          version: 1,
          streamId: `load-${i}`,
          modalities: ['audio', 'video', 'text'],
          audio: { sampleRate: 16000, format: 'pcm16' },
          video: { format: 'gray', width: 64, height: 48 },
        }),
      );
      return ws;
    }),
  );
  const pcm = new Uint8Array(new Int16Array(160).map((_, i) => Math.round(4000 * Math.sin(i / 3))).buffer);
  const frame = new Uint8Array(64 * 48).map((_, i) => i & 255);
  const t0 = wallClockMicros();
  let tick = 0;
  let lastProgress = 0;
  // Send every 10 ms frame whose capture time has come, as capture devices would.
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const due = Math.floor((wallClockMicros() - t0) / 10_000);
      for (; tick <= due; tick++) {
        const time = t0 + tick * 10_000;
        producers.forEach((ws, i) => {
          ws.send(encodeFrame({ modality: 'audio', time, seq: tick, payload: pcm }));
          if (tick % 10 === i % 10)
            ws.send(encodeFrame({ modality: 'video', time, seq: tick, payload: frame }));
          if (tick % 170 === i % 170)
            ws.send(JSON.stringify({ type: 'text', time, seq: tick, text: 'typing away' }));
        });
      }
      // As the demo page does every 20 ms: everything captured before the next tick has been sent.
      if (tick - lastProgress >= 2) {
        lastProgress = tick;
        const progress = JSON.stringify({ type: 'progress', time: t0 + tick * 10_000 });
        for (const ws of producers) ws.send(progress);
      }
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
    sum(
      /braid_pipeline_total\{counter="(?:model_dropped_\w+|late|rejected_\w+|decode_dropped_\w+)"\} (\d+)/g,
    ) +
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
  const child = await startServe(modelDir, ++port);
  try {
    const r = await measure(streams, port);
    console.log(
      `| ${streams} | ${r.predictions} / ~${r.expected} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.max.toFixed(0)} | ${r.subscriberDropped} | ${r.serverDropped} |`,
    );
  } finally {
    child.kill('SIGINT');
  }
}
