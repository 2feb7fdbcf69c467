import { type ChildProcess, spawn } from 'node:child_process';
import WebSocket from 'ws';
import { predictionLine } from '../../src/pipeline/prediction-order.js';
import type { PredictionMessage } from '../../src/server/protocol.js';

/** braid processes started by a test (bin/braid.js, which runs dist/: `npm run build` first). */
export interface BraidProcess {
  readonly child: ChildProcess;
  /** Everything it wrote to stderr so far (JSON log lines). */
  log(): string;
  /** Resolves with the first match of `pattern` in its stderr (now or later); rejects if it exits first. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** Resolves with its exit code once it exited. */
  exited(): Promise<number | null>;
}

export const started: BraidProcess[] = [];

/** Kills (SIGKILL) every process the test started that is still running. */
export function killAll(): void {
  for (const p of started.splice(0))
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
}

export function braid(args: readonly string[], env: Record<string, string> = {}): BraidProcess {
  const child = spawn(process.execPath, ['bin/braid.js', ...args, '--log-format', 'json'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  const waiters: { pattern: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.stdout!.resume();
  child.stderr!.on('data', (d) => {
    text += String(d);
    for (const w of [...waiters]) {
      const m = w.pattern.exec(text);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  const p: BraidProcess = {
    child,
    log: () => text,
    waitFor: (pattern, timeoutMs = 60_000) => {
      const m = pattern.exec(text);
      if (m) return Promise.resolve(m);
      return new Promise((resolve, reject) => {
        waiters.push({ pattern, resolve });
        const timer = setTimeout(
          () => reject(new Error(`timed out waiting for ${pattern} in: ${text.slice(-2000)}`)),
          timeoutMs,
        );
        timer.unref();
        void exit.then((code) => {
          clearTimeout(timer);
          reject(new Error(`braid ${args[0]} exited (${code}) before ${pattern}: ${text.slice(-2000)}`));
        });
      });
    },
    exited: () => exit,
  };
  started.push(p);
  return p;
}

/** Starts `braid serve ... --port 0` and resolves with its URL once it listens. */
export async function serveOn(args: readonly string[], env?: Record<string, string>) {
  const p = braid(['serve', '--port', '0', ...args], env);
  const m = await p.waitFor(/serving on (http:\/\/[^\s"]+)/);
  return { ...p, url: m[1] as string };
}

/** A subscriber to every stream of a server, collecting its predictions. */
export async function subscribeAll(url: string) {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/subscribe`);
  const predictions: PredictionMessage[] = [];
  /** Each closed stream, with how many predictions had come when its `closed` did. */
  const closedAt = new Map<string, number>();
  const waiters: { n: number; resolve: () => void }[] = [];
  ws.on('message', (d) => {
    const m = JSON.parse(String(d));
    if (m.type === 'stream' && m.event === 'closed') closedAt.set(m.streamId, predictions.length);
    if (m.type !== 'prediction') return;
    predictions.push(m);
    for (const w of [...waiters])
      if (predictions.length >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
  });
  await new Promise((r) => ws.once('open', r));
  ws.send(JSON.stringify({ subscribe: '*' }));
  await new Promise<void>((resolve) =>
    ws.on('message', (d) => {
      if (JSON.parse(String(d)).type === 'subscribed') resolve();
    }),
  );
  return {
    predictions,
    closedAt,
    /** Resolves once `n` predictions came (rejects after timeoutMs with what came). */
    count: (n: number, timeoutMs = 90_000) =>
      predictions.length >= n
        ? Promise.resolve()
        : new Promise<void>((resolve, reject) => {
            waiters.push({ n, resolve });
            setTimeout(
              () => reject(new Error(`got ${predictions.length} of ${n} predictions`)),
              timeoutMs,
            ).unref();
          }),
    close: () => ws.terminate(),
  };
}

/**
 * Predictions a server sent, as `braid replay` writes them: the replay's shift (whole hops) taken back off, in
 * (window end, stream id) order, one NDJSON line each — so they compare byte for byte with a local replay.
 */
export function asReplayLines(
  predictions: readonly PredictionMessage[],
  offset: number,
  hop: number,
): string {
  const shift = offset / hop;
  return predictions
    .map((p) => ({
      streamId: p.streamId,
      windowIndex: p.windowIndex - shift,
      windowStart: p.windowStart - offset,
      windowEnd: p.windowEnd - offset,
      scores: p.scores,
      present: p.present,
    }))
    .sort(
      (a, b) => a.windowEnd - b.windowEnd || (a.streamId < b.streamId ? -1 : a.streamId > b.streamId ? 1 : 0),
    )
    .map((p) => predictionLine(p as Parameters<typeof predictionLine>[0]))
    .join('');
}

/** The offset `braid replay --to` logged (µs added to every capture time). */
export async function replayOffset(p: BraidProcess): Promise<number> {
  const m = await p.waitFor(/"event":"replay_to"[^\n]*"offset":(\d+)/);
  return Number(m[1]);
}
