// Where a loaded server's time goes: `braid serve --workers N` (1: everything in one thread) under node --cpu-prof,
// with N real-time producers of the demo page's format and 2 subscribers, for 15 s; the profile's self time over the
// load (start-up left out) summed by stage of the data flow (the file each sampled function is in), a table per
// count and thread (the main thread, then each shard's).
// Run: npm run bench -- profile   (or npx tsx bench/profile.ts [--workers N] [--phases in-step|spread|window-ends] [streams...], default 256 512,
// 1 worker; --phases as in bench/server.ts)
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { wallClockMicros } from '../src/core/time.js';
import { openProducers, parsePhases, sendFor, startServe } from './load.js';
import { stageOf } from './stages.js';

const SECONDS = 15;

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string };
  readonly children?: readonly number[];
}
interface CpuProfile {
  readonly endTime: number;
  readonly startTime: number;
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** Self time by stage over the load only: the last SECONDS of the profile but its final half second (shutdown). */
function breakdown(profile: CpuProfile): { stages: Map<string, number>; functions: Map<string, number> } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const micros = new Map<string, number>();
  const functions = new Map<string, number>();
  const to = profile.endTime - 500_000;
  const from = to - (SECONDS - 1) * 1e6;
  let t = profile.startTime;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    t += dt;
    if (t < from || t > to) return;
    const frame = byId.get(id)!.callFrame;
    const stage = stageOf(frame);
    micros.set(stage, (micros.get(stage) ?? 0) + dt);
    if (stage === 'idle') return;
    const name = `${frame.functionName || '(anonymous)'} ${frame.url.replace(/^.*\/(node_modules\/|src\/)/, '$1')}`;
    functions.set(name, (functions.get(name) ?? 0) + dt);
  });
  return { stages: micros, functions };
}

async function profileAt(
  streams: number,
  port: number,
  workers: number,
): Promise<{ thread: string; result: ReturnType<typeof breakdown> }[]> {
  const dir = mkdtempSync(join(tmpdir(), 'braid-profile-'));
  const server = await startServe({
    port,
    model: 'models/demo',
    args: ['--workers', String(workers)],
    nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`],
  });
  const base = `ws://127.0.0.1:${port}`;
  const subscribers = spawn(
    process.execPath,
    ['--import', 'tsx', 'bench/server-subscribers.ts', base, '2', String(wallClockMicros())],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const producers = await openProducers(base, streams);
  const t0 = wallClockMicros();
  await sendFor(producers, t0, SECONDS, { phases });
  for (const { ws } of producers) ws.close();
  subscribers.kill('SIGINT');
  const exited = new Promise((r) => server.once('exit', r));
  server.kill('SIGINT'); // the profile is written as the process exits
  await exited;
  // One profile per thread (CPU.<date>.<time>.<pid>.<thread>.<n>.cpuprofile): the main thread's is thread 0. The
  // others are told apart by what ran in them: a shard runs shard-worker.ts; tsx's loader thread is left out.
  const threads = readdirSync(dir)
    .map((f) => ({ f, thread: /^CPU\.\d+\.\d+\.\d+\.(\d+)\.\d+\.cpuprofile$/.exec(f)?.[1] }))
    .filter((x): x is { f: string; thread: string } => x.thread !== undefined)
    .sort((a, b) => Number(a.thread) - Number(b.thread))
    .map(({ f, thread }) => ({
      thread,
      profile: JSON.parse(readFileSync(join(dir, f), 'utf8')) as CpuProfile,
    }));
  const isShard = (p: CpuProfile) => p.nodes.some((n) => n.callFrame.url.includes('src/shards/shard-worker'));
  const main = threads.filter((t) => t.thread === '0');
  const shards = threads.filter((t) => t.thread !== '0' && isShard(t.profile));
  return [
    ...main.map((t) => ({ thread: 'main thread', result: breakdown(t.profile) })),
    ...shards.map((t, i) => ({ thread: `shard ${i}`, result: breakdown(t.profile) })),
  ];
}

const { values, positionals } = parseArgs({
  options: { workers: { type: 'string', default: '1' }, phases: { type: 'string', default: 'in-step' } },
  allowPositionals: true,
});
const workers = Number(values.workers);
const phases = parsePhases(values.phases);
const counts = positionals.map(Number);
let port = 18_600;
for (const streams of counts.length > 0 ? counts : [256, 512]) {
  for (const { thread, result } of await profileAt(streams, ++port, workers)) {
    const { stages, functions } = result;
    const total = [...stages.values()].reduce((a, b) => a + b, 0);
    const busy = total - (stages.get('idle') ?? 0);
    console.log(
      `### ${streams} streams, --workers ${workers}, ${thread}: ${((busy / total) * 100).toFixed(0)} % busy\n`,
    );
    console.log('| stage | share of busy time | ms per second |');
    console.log('|---|---|---|');
    for (const [stage, us] of [...stages].sort((a, b) => b[1] - a[1])) {
      if (stage === 'idle') continue;
      console.log(
        `| ${stage} | ${((us / busy) * 100).toFixed(1)} % | ${(us / 1000 / (total / 1e6)).toFixed(0)} |`,
      );
    }
    console.log('\nThe functions with the most self time:\n');
    console.log('| function | file | share of busy time |');
    console.log('|---|---|---|');
    for (const [name, us] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, 15)) {
      const [fn, file] = name.split(' ');
      console.log(`| ${fn} | ${file ?? ''} | ${((us / busy) * 100).toFixed(1)} % |`);
    }
    console.log();
  }
}
