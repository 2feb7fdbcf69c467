// What one shard allocates per window, by stage: the allocation rate is what drives a shard's garbage collections.
// One shard's share of bench/server.ts's load (128 streams of the bounded framing: 20 ms PCM16 audio frames that
// are their own progress bounds, raw gray 64x48 at 10 fps, a text event every 1.7 s), packed and unpacked as the
// hand-off to a shard does, through PredictionPipelineRunner with the bundled model in this process, as fast as it
// goes. V8's sampling heap profiler runs with collected objects kept (includeObjectsCollectedBy{Major,Minor}GC), so
// the figures are bytes allocated, not bytes retained. A built-in (slice, Map.set...) counts for the stage of the
// JavaScript that called it; the harness's own allocations and the main thread's side of the hand-off (packing)
// are listed apart from the shard's.
// Run: npm run bench -- alloc   (or npx tsx bench/alloc.ts [streams] [seconds], default 128 10)
import { existsSync, mkdtempSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { Subject } from 'rxjs';
import type { StreamInput } from '../src/core/events.js';
import { parseBackendName } from '../src/model/backends.js';
import { loadModel, modelId, saveModel } from '../src/model/model-io.js';
import { PredictionPipelineRunner } from '../src/pipeline/prediction-pipeline.js';
import { decodeInputs, encodeInputs } from '../src/shards/input-batch.js';
import { untrainedModel } from '../test/helpers/demo-pipeline.js';
import { tickMessages } from './load.js';
import { stageOf } from './stages.js';

const STREAMS = Number(process.argv[2] ?? 128);
const SECONDS = Number(process.argv[3] ?? 10);
const WARMUP_TICKS = 400;
const T0 = 1_700_000_000_000_000;
const pcm20 = new Int16Array(320).map((_, i) => Math.round(4000 * Math.sin(i / 3)));
const frame = new Uint8Array(64 * 48).map((_, i) => i & 255);

/** Every stream's inputs of one 10 ms tick, as bench/load.ts sends them (and the ingest session turns them into). */
function tickInputs(tick: number): StreamInput[] {
  const out: StreamInput[] = [];
  const time = T0 + tick * 10_000;
  for (let i = 0; i < STREAMS; i++) {
    const streamId = `load-${i}`;
    for (const m of tickMessages('bounds', i, time, tick))
      if (m.kind === 'video')
        out.push({
          streamId,
          modality: 'video',
          time: m.time,
          seq: m.seq,
          payload: { format: 'gray', width: 64, height: 48, data: frame.slice() },
        });
      else if (m.kind === 'text')
        out.push({ streamId, modality: 'text', time: m.time, seq: m.seq, payload: { text: 'typing away' } });
      else if (m.kind === 'audio') {
        const payload = { sampleRate: 16_000, channels: 1, samples: pcm20.slice() };
        out.push({ streamId, modality: 'audio', time: m.time, seq: m.seq, payload });
        // A bounded frame is its own progress bound, at its end.
        out.push({ control: 'progress', streamId, time: m.time + 20_000 });
      }
  }
  return out;
}

const modelDir = existsSync('models/demo')
  ? 'models/demo'
  : join(mkdtempSync(join(tmpdir(), 'braid-alloc-')), 'm');
if (!existsSync('models/demo')) await saveModel(untrainedModel(), modelDir);
const runner = await PredictionPipelineRunner.create({
  model: await loadModel(modelDir),
  modelId: await modelId(modelDir),
  backend: parseBackendName('cpu-fused'),
  maxQueue: 1 << 20,
});
const input$ = new Subject<StreamInput>();
let predictions = 0;
const done = new Promise<void>((resolve, reject) =>
  runner.run(input$).subscribe({ next: () => predictions++, error: reject, complete: resolve }),
);
for (let i = 0; i < STREAMS; i++)
  input$.next({ control: 'open', streamId: `load-${i}`, modalities: ['audio', 'video', 'text'] });

/** Feeds ticks [from, to) in two hand-off batches each (the 1 ms linger gathers about that), yielding between. */
async function feed(from: number, to: number): Promise<void> {
  for (let tick = from; tick < to; tick++) {
    const inputs = tickInputs(tick);
    const half = inputs.length >> 1;
    for (const part of [inputs.slice(0, half), inputs.slice(half)])
      for (const input of decodeInputs(encodeInputs(part))) input$.next(input);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

interface SampledNode {
  readonly callFrame: { readonly functionName: string; readonly url: string };
  readonly selfSize: number;
  readonly children: readonly SampledNode[];
}

await feed(0, WARMUP_TICKS);
// Garbage collections over the span (without the profiler, which keeps a record of every sampled object).
const gc = { minor: 0, minorMs: 0, major: 0, majorMs: 0 };
const observer = new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const kind = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind;
    if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
      gc.major++;
      gc.majorMs += entry.duration;
    } else if (kind === constants.NODE_PERFORMANCE_GC_MINOR) {
      gc.minor++;
      gc.minorMs += entry.duration;
    }
  }
});
observer.observe({ entryTypes: ['gc'] });
await feed(WARMUP_TICKS, WARMUP_TICKS + SECONDS * 100);
observer.disconnect();
const session = new Session();
session.connect();
await session.post('HeapProfiler.enable');
// Node 20's typings lack the two include flags; V8 has them.
await session.post('HeapProfiler.startSampling', {
  samplingInterval: 4096,
  includeObjectsCollectedByMajorGC: true,
  includeObjectsCollectedByMinorGC: true,
} as { samplingInterval: number });
const before = predictions;
await feed(WARMUP_TICKS + SECONDS * 100, WARMUP_TICKS + 2 * SECONDS * 100);
const { profile } = await session.post('HeapProfiler.stopSampling');
session.disconnect();
const windows = predictions - before;

const HARNESS = 'harness (this script: the inputs it makes)';
const PACKING = "main thread's side of the hand-off (packing; not the shard's)";
const byStage = new Map<string, number>();
const byFunction = new Map<string, number>();
const add = (map: Map<string, number>, key: string, bytes: number) =>
  map.set(key, (map.get(key) ?? 0) + bytes);
const short = (url: string) => url.replace(/^.*\/(node_modules\/|src\/|bench\/)/, '$1');
/** A built-in (no url) is charged to the nearest JavaScript caller. */
function walk(node: SampledNode, caller?: SampledNode['callFrame']): void {
  const frame = node.callFrame.url === '' && caller ? caller : node.callFrame;
  if (node.selfSize > 0) {
    const stage = frame.url.includes('/bench/')
      ? HARNESS
      : frame.functionName === 'encodeInputs'
        ? PACKING
        : stageOf(frame);
    add(byStage, stage, node.selfSize);
    const builtin = node.callFrame.url === '' ? `${node.callFrame.functionName || '(anonymous)'} in ` : '';
    add(byFunction, `${builtin}${frame.functionName || '(anonymous)'} ${short(frame.url)}`, node.selfSize);
  }
  for (const child of node.children) walk(child, node.callFrame.url === '' ? caller : node.callFrame);
}
walk(profile.head as unknown as SampledNode);

const kib = (bytes: number) => (bytes / windows / 1024).toFixed(2);
const shard = [...byStage].filter(([s]) => s !== HARNESS && s !== PACKING).reduce((a, [, b]) => a + b, 0);
console.log(
  `${STREAMS} streams, ${SECONDS} s of capture, ${windows} windows; the shard allocated ${kib(shard)} KiB per window ` +
    `(${((shard / SECONDS) * (1 / 2 ** 20)).toFixed(1)} MiB per second of capture); garbage collections per second ` +
    `of capture over another ${SECONDS} s: ${(gc.minor / SECONDS).toFixed(1)} scavenges (${(gc.minorMs / SECONDS).toFixed(1)} ms), ` +
    `${(gc.major / SECONDS).toFixed(2)} mark-compacts (${(gc.majorMs / SECONDS).toFixed(1)} ms)\n`,
);
console.log('| stage | KiB per window |\n|---|---|');
for (const [stage, bytes] of [...byStage].sort((a, b) => b[1] - a[1]))
  console.log(`| ${stage} | ${kib(bytes)} |`);
console.log('\n| function (top 15) | KiB per window |\n|---|---|');
for (const [name, bytes] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, 15))
  console.log(`| ${name} | ${kib(bytes)} |`);
input$.complete();
await done;
