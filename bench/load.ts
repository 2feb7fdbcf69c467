// The load bench/server.ts and bench/soak.ts put on a server: `braid serve` in a process of its own, and real-time
// producers in the demo page's format (16 kHz PCM16 in 10 ms frames, raw gray 64x48 at 10 fps, a text event every
// ~1.7 s, a progress bound every 20 ms).
import { type ChildProcess, spawn } from 'node:child_process';
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

const pcm = new Uint8Array(new Int16Array(160).map((_, i) => Math.round(4000 * Math.sin(i / 3))).buffer);
const frame = new Uint8Array(64 * 48).map((_, i) => i & 255);

/**
 * Sends every 10 ms tick whose capture time has come (as capture devices would), from tick `from` on; returns the
 * next tick to send. Capture time of tick k is t0 + k × 10 ms.
 */
export function sendDue(producers: readonly WebSocket[], t0: number, from: number): number {
  const due = Math.floor((wallClockMicros() - t0) / 10_000);
  let tick = from;
  for (; tick <= due; tick++) {
    const time = t0 + tick * 10_000;
    producers.forEach((ws, i) => {
      ws.send(encodeFrame({ modality: 'audio', time, seq: tick, payload: pcm }));
      if (tick % 10 === i % 10) ws.send(encodeFrame({ modality: 'video', time, seq: tick, payload: frame }));
      if (tick % 170 === i % 170)
        ws.send(JSON.stringify({ type: 'text', time, seq: tick, text: 'typing away' }));
    });
    // As the demo page does every 20 ms: everything captured before the next tick has been sent.
    if (tick % 2 === 1) {
      const progress = JSON.stringify({ type: 'progress', time: time + 10_000 });
      for (const ws of producers) ws.send(progress);
    }
  }
  return tick;
}

/** Sends in real time from capture time t0 (every due tick, checked every 5 ms) until `seconds` of capture are sent. */
export function sendFor(producers: readonly WebSocket[], t0: number, seconds: number): Promise<void> {
  let tick = 0;
  return new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      tick = sendDue(producers, t0, tick);
      if (tick >= seconds * 100) {
        clearInterval(timer);
        resolve();
      }
    }, 5);
  });
}
