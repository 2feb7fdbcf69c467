import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { connectProducer } from '../../src/client/producer.js';
import { encodeFrame } from '../../src/server/protocol.js';
import { type BraidServer, startServer } from '../../src/server/server.js';
import { demoPipelineForTests } from '../helpers/demo-pipeline.js';
import { eventually } from '../helpers/source-assertions.js';
import { pythonWith } from '../helpers/system-tools.js';

const python = pythonWith('websockets');
let server: BraidServer | undefined;
afterAll(async () => server?.close());

describe('examples/subscriber.ts', () => {
  it('prints the predictions of a live stream', async () => {
    const pipeline = await demoPipelineForTests();
    server = await startServer({ pipeline, port: 0, log: () => {} });
    const wsUrl = server.url.replace('http', 'ws');
    const child = spawn(process.execPath, ['--import', 'tsx', 'examples/subscriber.ts', wsUrl, 'cam']);
    let out = '';
    const printed = new Promise<void>((resolve) =>
      child.stdout.on('data', (d) => {
        out += String(d);
        if (/cam #\d+ speech \d\.\d\d/.test(out)) resolve();
      }),
    );
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    const producer = new WebSocket(`${wsUrl}/ingest`);
    await new Promise((r) => producer.once('open', r));
    producer.send(
      JSON.stringify({
        type: 'hello',
        version: 1,
        streamId: 'cam',
        modalities: ['audio'],
        audio: { sampleRate: 16000, format: 'pcm16' },
      }),
    );
    for (let i = 0; i < 150; i++)
      producer.send(
        encodeFrame({
          modality: 'audio',
          time: 1_000_000 + i * 10_000,
          seq: i,
          payload: new Uint8Array(320),
        }),
      );
    await printed;
    expect(out).toMatch(/connected: protocol v2, model \S+, labels speech, motion, typing, conversation/);
    expect(out).toMatch(/stream cam opened/);
    expect(pipeline.runtime.store.size).toBe(1);
    producer.close();
    // The producer left: its last window is flushed and the model state of its stream is freed.
    await eventually(() => /stream cam closed/.test(out) && pipeline.runtime.store.size === 0);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/^braid_events_total\{modality="audio"\} 150$/m);
    expect(metrics).toMatch(/^braid_windows_total [34]$/m);
    expect(metrics).toMatch(/braid_step_latency_seconds_count [1-9]/);
    expect(metrics).toMatch(/braid_end_to_end_latency_seconds_count [1-9]/);
    expect(metrics).toMatch(/braid_clients\{role="subscriber"\} 1/);
    child.kill();
  }, 30_000);

  it.skipIf(!python)(
    'examples/subscriber.py (Python, websockets) prints the predictions of a producer made with braid/client',
    async () => {
      const pipeline = await demoPipelineForTests();
      const local = await startServer({ pipeline, port: 0, log: () => {} });
      try {
        const child = spawn(python!, ['examples/subscriber.py', local.url, 'py-cam']);
        let out = '';
        const seen = (re: RegExp) =>
          new Promise<void>((resolve, reject) => {
            const check = () => re.test(out) && resolve();
            child.stdout.on('data', (d) => {
              out += String(d);
              check();
            });
            child.once('exit', (code) => reject(new Error(`subscriber.py exited with ${code}: ${out}`)));
            check();
          });
        await seen(/connected: protocol v2/);
        const producer = await connectProducer({
          url: local.url,
          streamId: 'py-cam',
          audio: { sampleRate: 16000 },
        });
        for (let i = 0; i < 150; i++) producer.sendAudio(new Int16Array(160), 2_000_000 + i * 10_000);
        await producer.close();
        await seen(/stream py-cam closed/);
        await seen(/py-cam #\d+ speech \d\.\d\d .*latency/);
        expect(out).toMatch(/stream py-cam opened/);
        child.kill();
      } finally {
        await local.close();
      }
    },
    30_000,
  );
});
