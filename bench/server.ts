// Load benchmark: N producer streams sent over /ingest in real time, in the format the demo page sends (16 kHz PCM16,
// raw gray 64x48 at 10 fps, a text event every ~1.7 s), M subscribers on /subscribe, all over loopback against
// `braid serve` running in its own process, the subscribers in a third process. Reports end-to-end latency (window
// end -> subscriber receives) p50/p99, everything dropped and the CPU each process used (cores busy, 100 % = one
// core). The producers and subscribers share the machine with the server. Each stream count runs three times in the
// same run: `--workers 1` with 10 ms frames and progress messages (everything in the server's main thread, as the
// demo page sent before frame bounds: the baseline), `--workers <cores>` with the same messages (streams sharded over
// threads), and `--workers <cores>` with 20 ms frames that are their own progress bounds, those three with producers
// on the grid --phases says (`in-step`, the default: all in one burst every 5 ms; `spread`: each producer on its own
// phase of the 10 ms grid, as independent devices); then a fourth time as the demo page sends today: 20 ms bound
// frames ending on the stream's window ends (`window-ends`, from each stream's ready.windowing).
// `--model DIR` (repeatable) runs every configuration with each model in turn, the first the baseline (default: the
// bundled models/demo), e.g. the bundled model beside an ensemble of seeds.
// Run: npm run bench -- server [--phases in-step|spread] [--model DIR]... [streams...]   (default 16 256 512 1024)
import { existsSync, mkdtempSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { saveModel } from '../src/model/model-io.js';
import { untrainedModel } from '../test/helpers/demo-pipeline.js';
import { type Framing, measureLoad, type Phases, parsePhases, startServe } from './load.js';

const SECONDS = 20;
const WARMUP_S = 4;
const SUBSCRIBERS = 2;
const { values, positionals } = parseArgs({
  options: { phases: { type: 'string', default: 'in-step' }, model: { type: 'string', multiple: true } },
  allowPositionals: true,
});

const basePhases = parsePhases(values.phases);
const measure = (streams: number, port: number, serverPid: number, framing: Framing, phases: Phases) =>
  measureLoad(streams, port, {
    seconds: SECONDS,
    warmupS: WARMUP_S,
    subscribers: SUBSCRIBERS,
    serverPid,
    load: { framing, phases },
  });

const dir = mkdtempSync(join(tmpdir(), 'braid-bench-server-'));
const defaultModel = existsSync('models/demo') ? 'models/demo' : join(dir, 'model');
if (!values.model && !existsSync('models/demo')) await saveModel(untrainedModel(), defaultModel);
const modelDirs = values.model ?? [defaultModel];
const counts = positionals.map(Number);
console.log(
  `models: ${modelDirs.join(', ')}; ${SUBSCRIBERS} subscribers (all streams each); ${SECONDS} s per run, first ${WARMUP_S} s not counted\n`,
);
console.log(
  '| model | streams | workers | framing | producers | predictions received / expected | latency p50 ms | p99 ms | max ms | dropped (subscribers) | dropped/late/rejected (server) | CPU server (its main thread) | CPU load generator | CPU subscribers |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
const pct = (x: number) => `${Math.round(x * 100)} %`;
let port = 18_400;
const cores = availableParallelism();
const runs: { workers: number; framing: Framing; phases: Phases }[] = [
  { workers: 1, framing: 'progress', phases: basePhases },
  ...(cores > 1 ? [{ workers: cores, framing: 'progress' as const, phases: basePhases }] : []),
  { workers: cores, framing: 'bounds', phases: basePhases },
  { workers: cores, framing: 'bounds', phases: 'window-ends' },
];
for (const streams of counts.length > 0 ? counts : [16, 256, 512, 1024])
  for (const { workers, framing, phases } of runs)
    for (const modelDir of modelDirs) {
      const child = await startServe({ port: ++port, model: modelDir, args: ['--workers', String(workers)] });
      try {
        const r = await measure(streams, port, child.pid!, framing, phases);
        console.log(
          `| ${modelDir} | ${streams} | ${workers} | ${framing} | ${phases} | ${r.predictions} / ~${r.expected} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.max.toFixed(0)} | ${r.subscriberDropped} | ${r.serverDropped} | ${pct(r.busy.server)} (${pct(r.busy.serverMain)}) | ${pct(r.busy.load)} | ${pct(r.busy.subscribers)} |`,
        );
      } finally {
        child.kill('SIGINT');
      }
    }
