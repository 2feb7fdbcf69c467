import { mkdirSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BraidServer, startServer } from '../../src/server/server.js';
import { demoPipelineForTests } from '../helpers/demo-pipeline.js';
import { fakeCameraY4m, fakeMicrophoneWav } from '../helpers/media.js';
import { requireTool } from '../helpers/system-tools.js';

const hasTools = requireTool('chromium') && requireTool('ffmpeg') && requireTool('sox');

describe.skipIf(!hasTools)('browser demo in real headless Chromium', () => {
  let server: BraidServer;
  const received = { audio: 0, video: 0, text: 0, label: 0 };
  let browser: Browser;

  beforeAll(async () => {
    server = await startServer({
      pipeline: await demoPipelineForTests(),
      port: 0,
      log: () => {},
      onInput: (input) => {
        if (!('control' in input)) received[input.modality]++;
      },
    });
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--use-fake-ui-for-media-stream',
        '--use-fake-device-for-media-stream',
        `--use-file-for-fake-audio-capture=${fakeMicrophoneWav()}`,
        `--use-file-for-fake-video-capture=${fakeCameraY4m()}`,
        '--autoplay-policy=no-user-gesture-required',
      ],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('streams microphone, camera and typed text, and charts predictions for its own stream within 2 s', async () => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(server.url);
    // The clock starts at the click: getUserMedia, the worklet, the socket and the first window all count.
    const started = Date.now();
    await page.click('#start');
    await page.waitForFunction(
      () => (window as unknown as { __braid: { count: number } }).__braid.count > 0,
      undefined,
      { timeout: 2000 },
    );
    const firstAfterMs = Date.now() - started;
    const streamId = await page.evaluate(
      () => (window as unknown as { __braid: { streamId: string } }).__braid.streamId,
    );
    await page.type('#text', 'hello braid, this is typed text');
    // Let a few more windows arrive so the chart has a line to draw.
    await page.waitForFunction(
      () => (window as unknown as { __braid: { count: number } }).__braid.count >= 4,
      undefined,
      {
        timeout: 5000,
      },
    );
    const state = await page.evaluate(() => {
      const s = (
        window as unknown as { __braid: { watching: string; series: { t: number[]; scores: number[][] } } }
      ).__braid;
      return { watching: s.watching, points: s.series.t.length, labels: s.series.scores.length };
    });
    expect(state.watching).toBe(streamId);
    expect(state.points).toBeGreaterThanOrEqual(4);
    expect(state.labels).toBeGreaterThan(0);
    expect(await page.locator('#chart canvas').count()).toBeGreaterThan(0);
    expect(await page.textContent('#latency')).toMatch(/\d+ ms/);
    expect(server.activeStreams()).toContain(streamId);
    // Real microphone samples, camera frames and the typed text all reached the server.
    expect(received.audio).toBeGreaterThan(50);
    expect(received.video).toBeGreaterThan(5);
    expect(received.text).toBeGreaterThan(0);
    mkdirSync('test-artifacts', { recursive: true });
    await page.screenshot({ path: 'test-artifacts/demo-page.png' });
    expect(errors).toEqual([]);
    expect(firstAfterMs).toBeLessThan(2000);
    await page.click('#stop');
  }, 60_000);
});
