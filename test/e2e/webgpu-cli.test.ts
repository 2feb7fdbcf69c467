/// <reference types="@webgpu/types" />
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { wallClockMicros } from '../../src/core/time.js';
import { loadModel } from '../../src/model/model-io.js';
import type { WebGpuStep } from '../../src/model/webgpu-step.js';
import { PredictionPipelineRunner } from '../../src/pipeline/prediction-pipeline.js';
import { encodeFrame } from '../../src/server/protocol.js';
import { type BraidServer, startServer } from '../../src/server/server.js';
import { DEMO_MODEL_DIR } from '../helpers/demo-pipeline.js';
import { SWIFTSHADER_ENV, useSwiftShader } from '../helpers/swiftshader.js';

/**
 * The webgpu backend end to end on SwiftShader: `braid replay` against cpu-fused and against itself, `braid serve`
 * with streams coming and going over real WebSockets, and a served pipeline whose GPU is destroyed mid-run.
 */
const ready = await useSwiftShader();
const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'braid-webgpu-'));
const children: ChildProcess[] = [];
const servers: BraidServer[] = [];
const sockets: WebSocket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.terminate();
  for (const s of servers.splice(0)) await s.close();
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

interface Line {
  streamId: string;
  windowIndex: number;
  scores: Record<string, number>;
}

async function replay(backend: string, out: string, env: NodeJS.ProcessEnv = SWIFTSHADER_ENV) {
  const { stderr } = await run(
    process.execPath,
    ['--import', 'tsx', 'src/cli/run.ts', 'replay', 'streams/demo.mcap', '--backend', backend, '--out', out],
    { env: { ...process.env, ...env } },
  );
  return { text: readFileSync(out, 'utf8'), stderr };
}

const parse = (text: string): Line[] =>
  text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Line);

describe.skipIf(!ready)('braid replay --backend webgpu (SwiftShader)', () => {
  it('gives the cpu-fused scores within 1e-4 and the same bytes run to run; without BRAID_WEBGPU_SOFTWARE=1 it refuses the software adapter, naming it', async () => {
    const [gpu, again, cpu, refused] = await Promise.all([
      replay('webgpu', join(dir, 'webgpu-1.ndjson')),
      replay('webgpu', join(dir, 'webgpu-2.ndjson')),
      replay('cpu-fused', join(dir, 'cpu.ndjson')),
      replay('webgpu', join(dir, 'refused.ndjson'), {
        VK_ICD_FILENAMES: SWIFTSHADER_ENV.VK_ICD_FILENAMES,
        BRAID_WEBGPU_SOFTWARE: '',
      }).catch((e: { code: number; stderr: string }) => e),
    ]);
    expect(gpu.stderr).toMatch(
      /model backend webgpu: backend webgpu was named \(on google swiftshader .*a software adapter/,
    );
    // Dawn's native warnings stay out of the log.
    expect(gpu.stderr).not.toMatch(/vkCreateInstance|XDG_RUNTIME_DIR|Couldn't load Vulkan/);
    expect(again.text).toBe(gpu.text);
    const [g, c] = [parse(gpu.text), parse(cpu.text)];
    expect(g.length).toBeGreaterThan(100);
    expect(g.map((l) => `${l.streamId}#${l.windowIndex}`)).toEqual(
      c.map((l) => `${l.streamId}#${l.windowIndex}`),
    );
    let worst = 0;
    g.forEach((line, i) => {
      for (const [label, score] of Object.entries(line.scores))
        worst = Math.max(worst, Math.abs(score - ((c[i] as Line).scores[label] as number)));
    });
    expect(worst).toBeLessThanOrEqual(1e-4);
    expect(refused).toMatchObject({ code: 1 });
    expect((refused as { stderr: string }).stderr).toMatch(
      /backend "webgpu" is not available here: Dawn's adapter is a software one, google swiftshader \(SwiftShader driver [\d.]+\).*BRAID_WEBGPU_SOFTWARE=1/,
    );
  }, 240_000);
});

/** The JSON messages a socket gets, and a wait for the first one matching (event-driven, with a generous cap). */
function listen(ws: WebSocket) {
  const messages: Record<string, unknown>[] = [];
  const waiters: { pred: (m: Record<string, unknown>) => boolean; resolve: () => void }[] = [];
  ws.on('message', (data) => {
    const m = JSON.parse(String(data)) as Record<string, unknown>;
    messages.push(m);
    for (const w of [...waiters])
      if (w.pred(m)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
  });
  return {
    messages,
    until: (pred: (m: Record<string, unknown>) => boolean, what: string) =>
      messages.some(pred)
        ? Promise.resolve()
        : new Promise<void>((resolve, reject) => {
            waiters.push({ pred, resolve });
            setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 90_000).unref();
          }),
  };
}

async function open(url: string, path: string): Promise<WebSocket> {
  const ws = new WebSocket(url.replace('http', 'ws') + path);
  sockets.push(ws);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return ws;
}

/** A subscriber to every stream; listening from the start (the welcome can come with the handshake). */
async function subscribeAll(url: string): Promise<ReturnType<typeof listen>> {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/subscribe`);
  sockets.push(ws);
  const inbox = listen(ws);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  await inbox.until((m) => m['type'] === 'welcome', 'the welcome');
  ws.send(JSON.stringify({ subscribe: '*' }));
  return inbox;
}

/** A producer sending `seconds` of a tone from capture time t0 in 10 ms frames, with progress bounds. */
async function produce(
  url: string,
  streamId: string,
  t0: number,
  seconds: number,
  from = 0,
): Promise<WebSocket> {
  const ws = await open(url, '/ingest');
  ws.send(
    JSON.stringify({
      type: 'hello',
      version: 1,
      streamId,
      modalities: ['audio'],
      audio: { sampleRate: 16000, format: 'pcm16' },
    }),
  );
  await sendAudio(ws, t0, from, seconds * 100);
  return ws;
}

async function sendAudio(ws: WebSocket, t0: number, from: number, to: number): Promise<void> {
  for (let tick = from; tick < to; tick++) {
    const pcm = new Int16Array(160);
    for (let i = 0; i < 160; i++)
      pcm[i] = Math.round(6000 * Math.sin((2 * Math.PI * 440 * (tick * 160 + i)) / 16000));
    const time = t0 + tick * 10_000;
    ws.send(encodeFrame({ modality: 'audio', time, seq: tick, payload: new Uint8Array(pcm.buffer) }));
    if (tick % 10 === 9) ws.send(JSON.stringify({ type: 'progress', time: time + 10_000 }));
    // Let the server read and the other producers send in between.
    if (tick % 25 === 24) await new Promise((r) => setImmediate(r));
  }
}

const predictionOf = (streamId: string) => (m: Record<string, unknown>) =>
  m['type'] === 'prediction' && m['streamId'] === streamId;

describe.skipIf(!ready)('braid serve --backend webgpu (SwiftShader)', () => {
  it('serves streams that open and close while others run, reusing GPU slots', async () => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/cli/run.ts',
        'serve',
        '--port',
        '0',
        '--backend',
        'webgpu',
        '--gpu-streams',
        '4',
      ],
      { env: { ...process.env, ...SWIFTSHADER_ENV } },
    );
    children.push(child);
    let log = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (d) => {
        log += String(d);
        const m = /serving on (http:\/\/\S+)/.exec(log);
        if (m) resolve(m[1] as string);
      });
      child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${log}`)));
    });
    expect(log).toMatch(/model backend webgpu: backend webgpu was named \(on google swiftshader/);
    const inbox = await subscribeAll(url);
    const t0 = Math.floor(wallClockMicros() / 1e6) * 1e6;
    // Seven streams, at most three at a time, on four GPU slots: each new stream needs a slot a closed one freed.
    const ids = Array.from({ length: 7 }, (_, i) => `mic-${i}`);
    const lifetime = async (id: string, k: number) => {
      const ws = await produce(url, id, t0 + k * 400_000, 1.6);
      await inbox.until(predictionOf(id), `a prediction for ${id}`);
      ws.close();
      await inbox.until(
        (m) => m['type'] === 'stream' && m['event'] === 'closed' && m['streamId'] === id,
        `${id} closed`,
      );
    };
    let next = 0;
    const lane = async () => {
      while (next < ids.length) {
        const k = next++;
        await lifetime(ids[k] as string, k);
      }
    };
    await Promise.all([lane(), lane(), lane()]);
    for (const id of ids) expect(inbox.messages.filter(predictionOf(id)).length).toBeGreaterThanOrEqual(2);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/^braid_model_steps_total [1-9]/m);
    expect(metrics).not.toMatch(
      /braid_rejected_total\{stage="model",reason="no_state_slot"\}|braid_model_failovers_total [1-9]|reason="device_lost"\} [1-9]/,
    );
    expect(log).not.toMatch(/vkCreateInstance|XDG_RUNTIME_DIR|Couldn't load Vulkan/);
  }, 240_000);
});

describe.skipIf(!ready)('a served pipeline whose GPU is lost', () => {
  it('moves to cpu-fused and keeps serving every stream', async () => {
    process.env['BRAID_WEBGPU_SOFTWARE'] = '1';
    const lines: string[] = [];
    const pipeline = await PredictionPipelineRunner.create({
      model: await loadModel(DEMO_MODEL_DIR),
      backend: 'webgpu',
      log: (l) => lines.push(l),
    });
    const server = await startServer({ pipeline, port: 0, log: () => {}, messagesPerSecond: 100_000 });
    servers.push(server);
    const inbox = await subscribeAll(server.url);
    const t0 = Math.floor(wallClockMicros() / 1e6) * 1e6;
    const producers = await Promise.all(['left', 'right'].map((id) => produce(server.url, id, t0, 1.2)));
    await Promise.all(['left', 'right'].map((id) => inbox.until(predictionOf(id), `a prediction for ${id}`)));
    const before = inbox.messages.length;
    (pipeline.runtime.kernel as WebGpuStep).gpuDevice.destroy();
    await Promise.all(producers.map((ws) => sendAudio(ws, t0, 120, 300)));
    const after = (id: string) => (m: Record<string, unknown>) =>
      predictionOf(id)(m) &&
      inbox.messages.indexOf(m) >= before &&
      (m['windowEnd'] as number) > t0 + 2_000_000;
    await Promise.all(
      ['left', 'right'].map((id) => inbox.until(after(id), `a prediction for ${id} after the loss`)),
    );
    expect(pipeline.runtime.backend).toBe('cpu-fused');
    expect(pipeline.runtime.statsSnapshot()).toMatchObject({ failovers: 1, resets: { device_lost: 2 } });
    expect(lines.join('\n')).toMatch(
      /failed, its device was lost .*moved to cpu-fused, carrying 0 stream state\(s\); 2 could not be read back/,
    );
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/^braid_model_failovers_total 1$/m);
    expect(metrics).toMatch(/^braid_model_resets_total\{reason="device_lost"\} 2$/m);
  }, 120_000);
});
