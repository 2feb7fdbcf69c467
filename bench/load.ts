// The load bench/server.ts and bench/soak.ts put on a server: `braid serve` in a process of its own, and real-time
// producers in the demo page's format (16 kHz PCM16, raw gray 64x48 at 10 fps, a text event every ~1.7 s) in one of
// two framings: `bounds`, the page's today (20 ms audio frames, each flagged as the progress bound at its end: ~61
// messages per stream per second), or `progress`, the page's before (10 ms frames and a progress message every
// 20 ms: ~161).
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import type { WindowGrid } from '../src/client/window-grid.js';
import { wallClockMicros } from '../src/core/time.js';
import { encodeFrame } from '../src/server/protocol.js';

export interface ServeOptions {
  readonly port: number;
  readonly model: string;
  readonly backend?: string;
  readonly args?: readonly string[];
  /** Options for node itself (e.g. --cpu-prof). */
  readonly nodeArgs?: readonly string[];
  /** The checkout to serve from (default: this one): another commit's worktree, for an A/B in one run. */
  readonly cwd?: string;
}

/** Starts `braid serve` and resolves once it listens. */
export async function startServe(options: ServeOptions): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [
      ...(options.nodeArgs ?? []),
      '--import',
      'tsx',
      'src/cli/run.ts',
      'serve',
      '--port',
      String(options.port),
      '--model',
      options.model,
      '--backend',
      options.backend ?? 'cpu-fused',
      ...(options.args ?? []),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], ...(options.cwd && { cwd: options.cwd }) },
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
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return ws;
}

/** A producer's socket and its stream's window grid, as its `ready` gave them. */
export interface LoadProducer {
  readonly ws: WebSocket;
  readonly grid: WindowGrid;
}

/** Opens `streams` producers named load-0, load-1..., sends their hellos and resolves once each has its `ready`. */
export function openProducers(base: string, streams: number): Promise<LoadProducer[]> {
  return Promise.all(
    Array.from({ length: streams }, async (_, i) => {
      const ws = await open(`${base}/ingest`);
      const ready = new Promise<WindowGrid>((resolve, reject) => {
        ws.once('message', (data) => {
          const m = JSON.parse(String(data)) as { type: string; windowing?: WindowGrid };
          if (m.type === 'ready' && m.windowing) resolve(m.windowing);
          else reject(new Error(`load-${i}: expected ready, got ${String(data)}`));
        });
      });
      ws.send(
        JSON.stringify({
          type: 'hello',
          version: 2, // as the demo page: v2 is answered with a `ready` carrying the window grid
          streamId: `load-${i}`,
          modalities: ['audio', 'video', 'text'],
          audio: { sampleRate: 16000, format: 'pcm16' },
          video: { format: 'gray', width: 64, height: 48 },
        }),
      );
      const { origin, size, hop } = await ready;
      return { ws, grid: { origin, size, hop } };
    }),
  );
}

export type Framing = 'bounds' | 'progress';

const tone = (samples: number) =>
  new Uint8Array(new Int16Array(samples).map((_, i) => Math.round(4000 * Math.sin(i / 3))).buffer);
const pcm10 = tone(160);
const pcm20 = tone(320);
const frame = new Uint8Array(64 * 48).map((_, i) => i & 255);

/**
 * Where each producer's 10 ms tick grid lies: `in-step`, all on the same grid (every producer's frames in one burst
 * every 5 ms); `spread`, producer i shifted by i/N of 10 ms, as independent devices; `window-ends`, each producer's
 * 20 ms audio frames ending where its stream's windows end (`ready.windowing`), as the demo page cuts them, so a
 * window closes as its last sample arrives. The last two are checked every millisecond.
 */
export type Phases = 'in-step' | 'spread' | 'window-ends';

/** A --phases flag's value, or a clear error. */
export function parsePhases(flag: string | undefined): Phases {
  if (flag === 'in-step' || flag === 'spread' || flag === 'window-ends') return flag;
  throw new Error(`--phases: expected in-step, spread or window-ends, got ${flag}`);
}

export interface LoadOptions {
  readonly framing?: Framing;
  readonly phases?: Phases;
}

/** Producer `i`'s shift of its tick grid from t0, µs. */
function phaseOf(phases: Phases, i: number, producers: readonly LoadProducer[], t0: number): number {
  if (phases === 'in-step') return 0;
  if (phases === 'spread') return Math.floor((i * 10_000) / producers.length);
  const { grid } = producers[i] as LoadProducer;
  // Frames of 20 ms end at t0 + phase + 10 ms + k·20 ms; on every window end only where windows end 20 ms apart.
  if (grid.hop % 20_000 !== 0 || grid.size % 20_000 !== 0)
    throw new Error(
      `window-ends needs windows in whole 20 ms frames, got size ${grid.size} hop ${grid.hop} µs`,
    );
  const mod = (x: number, m: number) => ((x % m) + m) % m;
  return mod(grid.origin + grid.size - t0 - 10_000, 20_000);
}

/**
 * Real-time producers: each producer's tick k (capture time t0 + its phase + k × 10 ms) is sent once its capture time
 * has come, as capture devices would.
 */
export class LoadGenerator {
  readonly #next: number[];
  readonly #phases: number[];
  readonly #framing: Framing;

  constructor(
    readonly producers: readonly LoadProducer[],
    readonly t0: number,
    options: LoadOptions = {},
  ) {
    this.#framing = options.framing ?? 'bounds';
    this.#next = producers.map(() => 0);
    this.#phases = producers.map((_, i) => phaseOf(options.phases ?? 'in-step', i, producers, t0));
  }

  /** Sends every due tick of every producer; returns the number of ticks every producer has sent. */
  sendDue(): number {
    const now = wallClockMicros();
    let sent = Number.POSITIVE_INFINITY;
    this.producers.forEach(({ ws }, i) => {
      const start = this.t0 + (this.#phases[i] as number);
      const due = Math.floor((now - start) / 10_000);
      let tick = this.#next[i] as number;
      for (; tick <= due; tick++) this.#send(ws, i, start + tick * 10_000, tick);
      this.#next[i] = tick;
      sent = Math.min(sent, tick);
    });
    return sent;
  }

  #send(ws: WebSocket, i: number, time: number, tick: number): void {
    for (const m of tickMessages(this.#framing, i, time, tick))
      if (m.kind === 'audio')
        ws.send(
          encodeFrame({
            modality: 'audio',
            time: m.time,
            seq: m.seq,
            payload: m.bound ? pcm20 : pcm10,
            ...(m.bound && { bound: true }),
          }),
        );
      else if (m.kind === 'video')
        ws.send(encodeFrame({ modality: 'video', time: m.time, seq: m.seq, payload: frame }));
      else if (m.kind === 'text')
        ws.send(JSON.stringify({ type: 'text', time: m.time, seq: m.seq, text: 'typing away' }));
      else ws.send(JSON.stringify({ type: 'progress', time: m.time }));
  }
}

/** One message of a producer's tick: the schedule both the wire (LoadGenerator) and bench/alloc.ts's inputs follow. */
export type TickMessage =
  | { readonly kind: 'audio'; readonly time: number; readonly seq: number; readonly bound: boolean }
  | { readonly kind: 'video' | 'text'; readonly time: number; readonly seq: number }
  | { readonly kind: 'progress'; readonly time: number };

/**
 * What producer `i` sends at tick `tick` (capture time `time`), in order. Only what was captured before `time`: a
 * device can only send what it has captured. (Until 2026-12-03 each tick sent the 10 ms after it too — audio up to
 * and progress bounds at time + 10 ms — so every latency measured with this generator read 10 ms short.) Audio is
 * 10 ms frames and a progress bound every 20 ms (`progress`), or 20 ms frames that are their own bound (`bounds`),
 * sent last, as the bound promises, after the tick's video and text.
 */
export function tickMessages(framing: Framing, i: number, time: number, tick: number): TickMessage[] {
  const out: TickMessage[] = [];
  if (framing === 'progress') out.push({ kind: 'audio', time: time - 10_000, seq: tick, bound: false });
  if (tick % 10 === i % 10) out.push({ kind: 'video', time, seq: tick });
  if (tick % 170 === i % 170) out.push({ kind: 'text', time, seq: tick });
  if (tick % 2 === 1)
    out.push(
      framing === 'bounds'
        ? { kind: 'audio', time: time - 20_000, seq: (tick - 1) / 2, bound: true }
        : { kind: 'progress', time },
    );
  return out;
}

/** Sends in real time from capture time t0 until `seconds` of capture are sent by every producer. */
export function sendFor(
  producers: readonly LoadProducer[],
  t0: number,
  seconds: number,
  options: LoadOptions = {},
): Promise<void> {
  const load = new LoadGenerator(producers, t0, options);
  return new Promise<void>((resolve) => {
    const timer = setInterval(
      () => {
        if (load.sendDue() < seconds * 100) return;
        clearInterval(timer);
        resolve();
      },
      (options.phases ?? 'in-step') === 'in-step' ? 5 : 1,
    );
  });
}

/**
 * CPU seconds (user + system) a process has used, all its threads, from /proc (Linux); with `thread`, that thread's
 * alone (the main thread's id is the process's).
 */
export function cpuSecondsOf(pid: number, thread?: number): number {
  const stat = readFileSync(
    thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`,
    'utf8',
  );
  const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const ownCpuSeconds = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
};

export interface LoadRun {
  readonly seconds: number;
  /** Predictions of the first seconds are not counted (start-up, JIT). */
  readonly warmupS: number;
  readonly subscribers: number;
  /** The server's process, for its CPU use (all its threads). */
  readonly serverPid?: number;
  readonly load?: LoadOptions;
}

/**
 * `streams` real-time producers against the server on `port` for `seconds`, `subscribers` subscribers (every stream
 * each) in a process of their own: end-to-end latency p50/p99/max, predictions received against expected (two per
 * second per stream per subscriber), and everything dropped on the way.
 */
export async function measureLoad(streams: number, port: number, run: LoadRun) {
  const { seconds: SECONDS, warmupS: WARMUP_S, subscribers: SUBSCRIBERS } = run;
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
  const pid = run.serverPid;
  const cpu0 = {
    server: pid === undefined ? 0 : cpuSecondsOf(pid),
    serverMain: pid === undefined ? 0 : cpuSecondsOf(pid, pid),
    load: ownCpuSeconds(),
    subscribers: cpuSecondsOf(subscribers.pid!),
  };
  await sendFor(producers, t0, SECONDS, run.load);
  const wall = (wallClockMicros() - t0) / 1e6;
  const busy = {
    server: pid === undefined ? Number.NaN : (cpuSecondsOf(pid) - cpu0.server) / wall,
    /** The server's main thread alone: the WebSocket front, which every message crosses. */
    serverMain: pid === undefined ? Number.NaN : (cpuSecondsOf(pid, pid) - cpu0.serverMain) / wall,
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
  for (const { ws } of producers) ws.close();
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
