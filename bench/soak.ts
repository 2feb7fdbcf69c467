// Soak benchmark: 64 real-time producers (the demo page's format) and 2 subscribers against `braid serve` running the
// bundled demo model in its own process, for 60 minutes (BRAID_SOAK_MINUTES to change). Every minute it prints the
// server's resident memory, heap, event-loop lag p99 and open handles (from its /metrics), predictions expected vs
// received and the subscribers' latency p50/p99 over that minute. Targets: RSS and heap flat after warm-up (within
// 10 %), nothing dropped, latency p99 at the last minute within 20 % of minute 5.
// Producers frame audio as the demo page does (`--framing bounds --phases window-ends`, the defaults: 20 ms frames that
// are their own progress bound, one ending on each window end of its stream); `--framing progress --phases in-step`
// is the load of the soaks before 2026-12-07.
// Run: npm run bench -- soak   (or npx tsx bench/soak.ts [--framing F] [--phases P] [minutes] [streams])
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { wallClockMicros } from '../src/core/time.js';
import { type Framing, LoadGenerator, openProducers, parsePhases, startServe } from './load.js';

const { values, positionals } = parseArgs({
  options: {
    framing: { type: 'string', default: 'bounds' },
    phases: { type: 'string', default: 'window-ends' },
  },
  allowPositionals: true,
});
if (values.framing !== 'bounds' && values.framing !== 'progress')
  throw new Error(`--framing: expected bounds or progress, got ${values.framing}`);
const FRAMING: Framing = values.framing;
const PHASES = parsePhases(values.phases);
const MINUTES = Number(positionals[0] ?? process.env['BRAID_SOAK_MINUTES'] ?? 60);
const STREAMS = Number(positionals[1] ?? 64);
const SUBSCRIBERS = 2;
const PORT = 18_700;

interface SubscriberMinute {
  readonly minute: number;
  readonly predictions: number;
  readonly dropped: number;
  readonly p50: number;
  readonly p99: number;
}

function metricValue(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

function sumOf(text: string, pattern: RegExp): number {
  return [...text.matchAll(pattern)].reduce((a, m) => a + Number(m[1]), 0);
}

const server = await startServe({ port: PORT, model: 'models/demo' });
const subscribers: ChildProcess = spawn(
  process.execPath,
  [
    '--import',
    'tsx',
    'bench/server-subscribers.ts',
    `ws://127.0.0.1:${PORT}`,
    String(SUBSCRIBERS),
    '9e18', // no whole-run totals: only the per-minute lines
    '60',
  ],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
const minutes: SubscriberMinute[] = [];
const lines = createInterface({ input: subscribers.stdout! });
await new Promise<void>((resolve) =>
  lines.on('line', (line) => {
    if (line === 'ready') return resolve();
    if (line.startsWith('{"minute"')) minutes.push(JSON.parse(line) as SubscriberMinute);
  }),
);

const producers = await openProducers(`ws://127.0.0.1:${PORT}`, STREAMS);
const t0 = wallClockMicros();
console.log(
  `${STREAMS} real-time producers (16 kHz PCM16, ${FRAMING === 'bounds' ? '20 ms frames that are their own progress bound' : '10 ms frames and progress every 20 ms'}, ${PHASES} phases; raw gray 64x48 at 10 fps, text every ~1.7 s), ${SUBSCRIBERS} subscribers of all streams, models/demo on cpu-fused, ${MINUTES} min\n`,
);
console.log(
  '| minute | server RSS MiB | heap used MiB | event-loop lag p99 ms | open handles | predictions received / expected | dropped/late/rejected (server) | drops told to subscribers | latency p50 ms | p99 ms |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|');

const load = new LoadGenerator(producers, t0, { framing: FRAMING, phases: PHASES });
// Producers on their own phases are checked every millisecond, as bench/load.ts's sendFor does.
const sender = setInterval(() => load.sendDue(), PHASES === 'in-step' ? 5 : 1);
let lastDropped = 0;
for (let minute = 1; minute <= MINUTES; minute++) {
  await new Promise<void>((resolve) => {
    const check = () => (minutes.length >= minute ? resolve() : setTimeout(check, 200));
    check();
  });
  const s = minutes[minute - 1]!;
  const text = await (await fetch(`http://127.0.0.1:${PORT}/metrics`)).text();
  // The server's own counts (refused input, late events, forced closes, predictions dropped for a slow subscriber);
  // the subscribers' column is the last of those seen from their side (told in their next message), not added to it.
  const dropped =
    sumOf(text, /^braid_rejected_total\{[^}]*\} (\S+)$/gm) +
    sumOf(text, /^braid_ingest_rejected_total\{[^}]*\} (\S+)$/gm) +
    sumOf(text, /^braid_subscriber_dropped_total (\S+)$/gm) +
    sumOf(text, /^braid_(?:late_events|forced_closes)_total(?:\{[^}]*\})? (\S+)$/gm);
  // Each stream makes two windows a second; each subscriber gets every one.
  const expected = STREAMS * 60 * 2 * SUBSCRIBERS;
  const mib = (v: number) => (v / 2 ** 20).toFixed(1);
  console.log(
    `| ${minute} | ${mib(metricValue(text, 'process_resident_memory_bytes'))} | ${mib(metricValue(text, 'nodejs_heap_size_used_bytes'))} | ${(metricValue(text, 'nodejs_eventloop_lag_p99_seconds') * 1000).toFixed(1)} | ${metricValue(text, 'nodejs_active_handles_total')} | ${s.predictions} / ${expected} | ${dropped - lastDropped} | ${s.dropped} | ${s.p50.toFixed(1)} | ${s.p99.toFixed(1)} |`,
  );
  lastDropped = dropped;
}
clearInterval(sender);
for (const { ws } of producers) ws.close();
subscribers.kill('SIGINT');
server.kill('SIGINT');
