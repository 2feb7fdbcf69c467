import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { encodeFrame } from '../../src/server/protocol.js';
import { type BraidServer, startServer } from '../../src/server/server.js';
import { demoPipelineForTests } from '../helpers/demo-pipeline.js';

let server: BraidServer | undefined;
afterAll(async () => server?.close());

describe('examples/subscriber.ts', () => {
  it('prints the predictions of a live stream', async () => {
    server = await startServer({ pipeline: await demoPipelineForTests(), port: 0, log: () => {} });
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
    expect(out).toMatch(/connected: protocol v1, labels speech, motion, typing, conversation/);
    expect(out).toMatch(/stream cam opened/);
    producer.close();
    child.kill();
  }, 30_000);
});
