// The load bench/server.ts and bench/soak.ts put on a server: `braid serve` in a process of its own, and real-time
// producers in the demo page's format (16 kHz PCM16, raw gray 64x48 at 10 fps, a text event every ~1.7 s) in one of
// two framings: `bounds`, the page's today (20 ms audio frames, each flagged as the progress bound at its end: ~61
// messages per stream per second), or `progress`, the page's before (10 ms frames and a progress message every
// 20 ms: ~161).
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
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

/** Opens `streams` producers named load-0, load-1... and sends their hellos. */
export function openProducers(base: string, streams: number): Promise<WebSocket[]> {
  return Promise.all(
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
}

export type Framing = 'bounds' | 'progress';

const tone = (samples: number) =>
  new Uint8Array(new Int16Array(samples).map((_, i) => Math.round(4000 * Math.sin(i / 3))).buffer);
const pcm10 = tone(160);
const pcm20 = tone(320);
const frame = new Uint8Array(64 * 48).map((_, i) => i & 255);

/**
 * Sends every 10 ms tick whose capture time has come (as capture devices would), from tick `from` on; returns the
 * next tick to send. Capture time of tick k is t0 + k × 10 ms.
 */
export function sendDue(
  producers: readonly WebSocket[],
  t0: number,
  from: number,
  framing: Framing = 'bounds',
): number {
  const due = Math.floor((wallClockMicros() - t0) / 10_000);
  let tick = from;
  for (; tick <= due; tick++) {
    const time = t0 + tick * 10_000;
    producers.forEach((ws, i) => {
      if (framing === 'progress')
        ws.send(encodeFrame({ modality: 'audio', time, seq: tick, payload: pcm10 }));
      if (tick % 10 === i % 10) ws.send(encodeFrame({ modality: 'video', time, seq: tick, payload: frame }));
      if (tick % 170 === i % 170)
        ws.send(JSON.stringify({ type: 'text', time, seq: tick, text: 'typing away' }));
      // Last, as its bound promises: the 20 ms frame ending at the next tick, after this tick's video and text.
      if (framing === 'bounds' && tick % 2 === 1)
        ws.send(
          encodeFrame({
            modality: 'audio',
            time: time - 10_000,
            seq: (tick - 1) / 2,
            payload: pcm20,
            bound: true,
          }),
        );
    });
    // As the demo page did every 20 ms: everything captured before the next tick has been sent.
    if (framing === 'progress' && tick % 2 === 1) {
      const progress = JSON.stringify({ type: 'progress', time: time + 10_000 });
      for (const ws of producers) ws.send(progress);
    }
  }
  return tick;
}

/** Sends in real time from capture time t0 (every due tick, checked every 5 ms) until `seconds` of capture are sent. */
export function sendFor(
  producers: readonly WebSocket[],
  t0: number,
  seconds: number,
  framing: Framing = 'bounds',
): Promise<void> {
  let tick = 0;
  return new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      tick = sendDue(producers, t0, tick, framing);
      if (tick >= seconds * 100) {
        clearInterval(timer);
        resolve();
      }
    }, 5);
  });
}

/** CPU seconds (user + system, all threads) a process has used, from /proc (Linux). */
export function cpuSecondsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
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
  readonly framing?: Framing;
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
    load: ownCpuSeconds(),
    subscribers: cpuSecondsOf(subscribers.pid!),
  };
  await sendFor(producers, t0, SECONDS, run.framing);
  const wall = (wallClockMicros() - t0) / 1e6;
  const busy = {
    server: pid === undefined ? Number.NaN : (cpuSecondsOf(pid) - cpu0.server) / wall,
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
