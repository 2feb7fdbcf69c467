// Where a loaded server's CPU goes, counted by Linux perf: on-CPU samples only (a thread preempted by another process
// is not sampled, unlike V8's --cpu-prof, which samples wall time and charges a preempted thread to whatever it was
// running), with the kernel's and libc's share (socket reads and writes, page faults, malloc) that V8 cannot see.
// `braid serve --workers N` under `perf record -g` for 8 s of the load of bench/profile.ts (N real-time producers in
// the demo page's framing, 2 subscribers); JIT-compiled functions named by node's --perf-basic-prof map. Each sample
// goes to the stage of the innermost JavaScript function on its stack (bench/stages.ts), natives and kernel below it
// included; samples with no JavaScript on the stack to what libuv or V8 was doing (socket I/O, timers, GC, ...).
// A table per thread: the main thread, each shard (told by its JavaScript: shard-worker.ts), V8's helper threads.
// Needs `perf` (Debian: linux-perf) and perf_event_paranoid ≤ 1 or root.
// Run: npx tsx bench/perf-profile.ts [--workers N] [--phases in-step|spread|window-ends] [streams...]   (default 256, 2 workers)
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { measureLoad, parsePhases, startServe } from './load.js';
import { stageOf } from './stages.js';

const RECORD_S = 8;

interface Frame {
  readonly symbol: string;
  readonly dso: string;
}

/** `perf script` output: samples separated by blank lines, a `tid` line, then frames innermost first. */
function parseSamples(text: string): { tid: number; frames: Frame[] }[] {
  const samples: { tid: number; frames: Frame[] }[] = [];
  for (const block of text.split('\n\n')) {
    const lines = block.split('\n').filter((l) => l.trim() !== '');
    const tid = Number(lines[0]?.trim());
    if (!Number.isInteger(tid)) continue;
    const frames: Frame[] = [];
    for (const line of lines.slice(1)) {
      const m = /^\s*[0-9a-f]+\s+(.*)\s+\((.*)\)$/.exec(line);
      if (m) frames.push({ symbol: m[1] as string, dso: m[2] as string });
    }
    samples.push({ tid, frames });
  }
  return samples;
}

/** A JIT frame of node's perf map: `JS:*name file:///path:line:col` (`*` optimised, `^` baseline, `~` interpreted). */
function jsFrame(frame: Frame): { functionName: string; url: string } | undefined {
  // WebAssembly (the log-mel kernel, libsamplerate): `JS:wasm-function[0]-0-turbofan`.
  if (frame.symbol.startsWith('JS:wasm-function'))
    return { functionName: frame.symbol.slice(3), url: 'wasm:' };
  const m = /^JS:[*^~+]?(\S*)\s+(\S+)$/.exec(frame.symbol) ?? /^JS:[*^~+]?()(\S+)$/.exec(frame.symbol);
  return m ? { functionName: m[1] as string, url: m[2] as string } : undefined;
}

/** What a sample with no JavaScript on its stack was doing, from the native frames. */
function nativeStage(frames: readonly Frame[]): string {
  const has = (re: RegExp) => frames.some((f) => re.test(f.symbol));
  if (has(/Heap::|Scavenge|MarkCompact|Sweeper|GCTracer|ConcurrentMarking|MinorMC/))
    return 'garbage collection';
  if (has(/^uv__read$|^uv__stream_io$|OnUvRead|OnUvAlloc/))
    return 'socket I/O outside JavaScript (libuv, kernel)';
  if (has(/^uv__io_poll$|^epoll_pwait$/)) return 'waiting for events (epoll)';
  if (has(/Compile|Turbofan|Maglev|Sparkplug|OptimizingCompile/)) return 'V8 compiler';
  if (has(/MessagePort|worker::/)) return 'worker messages (native)';
  return 'V8 and native, other';
}

/** Where the innermost non-kernel, non-libc frame sends a kernel or libc sample: the system's share, by cause. */
function systemShare(frames: readonly Frame[]): string | undefined {
  const leaf = frames[0];
  if (leaf === undefined) return undefined;
  const kernel = leaf.dso.includes('kernel');
  const libc = leaf.dso.includes('libc');
  if (!kernel && !libc) return undefined;
  const symbols = frames.map((f) => f.symbol);
  if (symbols.includes('asm_exc_page_fault')) return 'page faults';
  if (symbols.some((s) => /^(ksys_read|sock_read_iter|tcp_recvmsg)$/.test(s))) return 'socket reads';
  if (symbols.some((s) => /^(do_writev|sock_write_iter|tcp_sendmsg)$/.test(s))) return 'socket writes';
  if (symbols.some((s) => /futex/.test(s))) return 'futex (thread wake-ups)';
  if (libc && /malloc|free|unlink_chunk|realloc|sysmalloc|_int_/.test(leaf.symbol)) return 'malloc and free';
  if (libc && /mem(move|cpy|set)/.test(leaf.symbol)) return 'memcpy and memset';
  return kernel ? 'kernel, other' : 'libc, other';
}

const { values, positionals } = parseArgs({
  options: { workers: { type: 'string', default: '2' }, phases: { type: 'string', default: 'in-step' } },
  allowPositionals: true,
});
const workers = Number(values.workers);
const streams = Number(positionals[0] ?? 256);
const port = 18_650;
const dir = mkdtempSync(join(tmpdir(), 'braid-perf-'));
const data = join(dir, 'perf.data');

const server = await startServe({
  port,
  model: 'models/demo',
  args: ['--workers', String(workers)],
  nodeArgs: ['--perf-basic-prof-only-functions'],
});
const pid = server.pid!;
const load = measureLoad(streams, port, {
  seconds: RECORD_S + 8,
  warmupS: 4,
  subscribers: 2,
  serverPid: pid,
  load: { framing: 'bounds', phases: parsePhases(values.phases) },
});
// Past start-up and JIT warm-up (the load's first seconds), then RECORD_S seconds of steady load.
await new Promise((r) => setTimeout(r, 5000));
const perf = spawn(
  'perf',
  ['record', '-F', '999', '-g', '-p', String(pid), '-o', data, '--', 'sleep', String(RECORD_S)],
  { stdio: ['ignore', 'ignore', 'inherit'] },
);
const perfExit = await new Promise<number | null>((r) => perf.once('exit', r));
const run = await load;
const script = execFileSync('perf', ['script', '-i', data, '-F', 'tid,ip,sym,dso'], {
  maxBuffer: 1 << 30,
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'ignore'],
});
server.kill('SIGINT');
if (perfExit !== 0) throw new Error(`perf record exited with ${perfExit}`);

const samples = parseSamples(script);
const byThread = new Map<number, { tid: number; frames: Frame[] }[]>();
for (const s of samples) byThread.set(s.tid, [...(byThread.get(s.tid) ?? []), s]);
const isShard = (list: readonly { frames: Frame[] }[]) =>
  list.some((s) => s.frames.some((f) => f.symbol.includes('src/shards/shard-worker')));
const threads = [...byThread.entries()].sort((a, b) => b[1].length - a[1].length);
const named = threads.map(([tid, list]) => ({
  tid,
  list,
  name: tid === pid ? 'main thread' : isShard(list) ? 'shard' : 'V8 and Node helper threads',
}));
const shardCount = new Map<string, number>();
const groups = new Map<string, { tid: number; frames: Frame[] }[]>();
for (const t of named) {
  let name = t.name;
  if (name === 'shard') {
    const i = shardCount.get('shard') ?? 0;
    shardCount.set('shard', i + 1);
    name = `shard ${i}`;
  }
  groups.set(name, [...(groups.get(name) ?? []), ...t.list]);
}

const pct = (n: number, of: number) => `${((n / of) * 100).toFixed(1)} %`;
console.log(
  `${streams} streams, --workers ${workers}, producers ${values.phases}; ${RECORD_S} s of perf at 999 Hz; latency over the run p50 ${run.p50.toFixed(1)} ms, p99 ${run.p99.toFixed(1)} ms; server ${Math.round(run.busy.server * 100)} % of a core (main thread ${Math.round(run.busy.serverMain * 100)} %)\n`,
);
for (const [name, list] of [...groups.entries()].sort(
  (a, b) => Number(b[0] === 'main thread') - Number(a[0] === 'main thread') || a[0].localeCompare(b[0]),
)) {
  const stages = new Map<string, number>();
  const system = new Map<string, number>();
  for (const { frames } of list) {
    const js = frames.map(jsFrame).find((f) => f !== undefined);
    const stage = js ? stageOf(js) : nativeStage(frames);
    stages.set(stage, (stages.get(stage) ?? 0) + 1);
    const share = systemShare(frames);
    if (share) system.set(share, (system.get(share) ?? 0) + 1);
  }
  const cpu = list.length / 999 / RECORD_S;
  console.log(`### ${name}: ${Math.round(cpu * 100)} % of a core\n`);
  console.log('| stage (innermost JavaScript on the stack) | share of its CPU | ms per second |');
  console.log('|---|---|---|');
  for (const [stage, n] of [...stages].sort((a, b) => b[1] - a[1]))
    console.log(`| ${stage} | ${pct(n, list.length)} | ${((n / list.length) * cpu * 1000).toFixed(0)} |`);
  console.log('\n| of which in the kernel or libc | share of its CPU |');
  console.log('|---|---|');
  for (const [share, n] of [...system].sort((a, b) => b[1] - a[1]))
    console.log(`| ${share} | ${pct(n, list.length)} |`);
  console.log('');
}
process.exit(0);
