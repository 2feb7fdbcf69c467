// Load benchmark: N producer streams sent over /ingest in real time, in the format the demo page sends (16 kHz PCM16
// in 10 ms frames, raw gray 64x48 at 10 fps, a text event every ~1.7 s), M subscribers on /subscribe, all over
// loopback against `braid serve` running in its own process, the subscribers in a third process. Reports end-to-end latency (window end -> subscriber
// receives) p50/p99 and everything dropped. The producers and subscribers share the machine with the server.
// Run: npx tsx bench/server.ts [streams...]
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { saveModel } from '../src/model/model-io.js';
import { untrainedModel } from '../test/helpers/demo-pipeline.js';
import { measureLoad, startServe } from './load.js';

const SECONDS = 20;
const WARMUP_S = 4;
const SUBSCRIBERS = 2;
const measure = (streams: number, port: number) =>
  measureLoad(streams, port, { seconds: SECONDS, warmupS: WARMUP_S, subscribers: SUBSCRIBERS });

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
