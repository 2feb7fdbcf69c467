import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import puppeteer from 'puppeteer-core';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { streamOrigin } from '../../src/align/window-aligner.js';
import { type WindowGrid, windowEndAfter } from '../../src/client/window-grid.js';
import { audioFrameTime } from '../../src/core/time.js';
import { resolveEventSettings } from '../../src/events/settings.js';
import { McapRecorder } from '../../src/record/recorder.js';
import { readRecording } from '../../src/record/recording-reader.js';
import { type BraidServer, startServer } from '../../src/server/server.js';
import { demoPipelineForTests } from '../helpers/demo-pipeline.js';
import { fakeCameraY4m, fakeMicrophoneWav } from '../helpers/media.js';
import { startPulseAudio } from '../helpers/pulseaudio.js';
import { eventually } from '../helpers/source-assertions.js';
import { requireTool } from '../helpers/system-tools.js';
import { metric } from '../helpers/ws-client.js';

/**
 * The demo page in two real browsers — Chromium (playwright-core, fake microphone and camera fed from real speech
 * and video) and Firefox ESR (puppeteer-core over WebDriver BiDi, Firefox's fake devices, a PulseAudio null sink for
 * its AudioContext) — through braid's client
 * library: predictions arrive and the chart draws, labels marked on the page reach a recording, a microphone-only
 * session works, and a stream that stops leaves the picker.
 */

const hasChromium = requireTool('chromium') && requireTool('ffmpeg') && requireTool('sox');
const hasFirefox = requireTool('firefox-esr') && requireTool('pulseaudio');

/** What the test needs of a page, the same for playwright and puppeteer. */
interface DemoPage {
  goto(url: string): Promise<unknown>;
  click(selector: string): Promise<void>;
  type(selector: string, text: string): Promise<void>;
  keyDown(key: string): Promise<void>;
  keyUp(key: string): Promise<void>;
  evaluate<T>(fn: () => T): Promise<T>;
  waitFor(fn: () => boolean, timeoutMs: number): Promise<unknown>;
  screenshot(selector: string, path: string): Promise<Buffer>;
  errors: string[];
}

type BraidState = {
  streamId: string;
  count: number;
  watching: string | null;
  status: string;
  audioRate: number | null;
  series: { t: number[]; scores: number[][] };
  spans: Record<string, { from: number; to: number | null }[]>;
};
/** The page's state, inside page callbacks (which run in the browser and cannot call test functions). */
type W = { __braid: BraidState };

interface AudioFrameSpan {
  readonly time: number;
  readonly end: number;
  readonly sampleRate: number;
}

interface DemoServer {
  readonly server: BraidServer;
  readonly received: Record<string, Record<string, number>>;
  /** Each stream's audio frames as the server took them: capture time, where the frame ends, its rate. */
  readonly audioFrames: Record<string, AudioFrameSpan[]>;
  /** The stream's window grid, as the server's aligner has it. */
  gridOf(streamId: string): WindowGrid;
  /** Closes the server, finishes the recording and returns the label events of a stream in it. */
  labelsOf(streamId: string): Promise<Record<string, number>[]>;
}

const opened: BraidServer[] = [];
afterAll(async () => {
  for (const s of opened) await s.close();
});

/** The demo server, every input also written to a real MCAP recording (as `braid serve --record` does). */
async function demoServer(): Promise<DemoServer> {
  const recording = join(mkdtempSync(join(tmpdir(), 'braid-demo-')), 'page.mcap');
  const recorder = await McapRecorder.create(recording);
  const received: Record<string, Record<string, number>> = {};
  const audioFrames: Record<string, AudioFrameSpan[]> = {};
  const pipeline = await demoPipelineForTests();
  const server = await startServer({
    pipeline,
    port: 0,
    // Typing turns on at a stream's first window and stays on: the page must shade a span for it.
    events: resolveEventSettings(pipeline.labels, {}, { typing: { on: 0, off: 0 } }),
    onInput: (input) => {
      received[input.streamId] ??= {};
      if ('control' in input) {
        if (input.control === 'progress')
          received[input.streamId]!['progress'] = (received[input.streamId]!['progress'] ?? 0) + 1;
        return;
      }
      received[input.streamId]![input.modality] = (received[input.streamId]![input.modality] ?? 0) + 1;
      if (input.modality === 'audio') {
        const { samples, channels, sampleRate } = input.payload;
        (audioFrames[input.streamId] ??= []).push({
          time: input.time,
          end: audioFrameTime(input.time, samples.length / channels, sampleRate),
          sampleRate,
        });
      }
      void recorder.write(input).catch(() => {});
    },
  });
  opened.push(server);
  const w = pipeline.windowing!;
  return {
    server,
    received,
    audioFrames,
    gridOf: (streamId) => ({
      origin: streamOrigin(streamId, { origin: 0, hop: w.hop, phase: w.phase ?? 'aligned' }),
      size: w.size,
      hop: w.hop,
    }),
    labelsOf: async (streamId) => {
      opened.splice(opened.indexOf(server), 1);
      await server.close();
      await recorder.close();
      const labels: Record<string, number>[] = [];
      for await (const e of readRecording(recording, { onWarning: () => {} }))
        if (e.streamId === streamId && e.modality === 'label') labels.push({ ...e.payload.labels });
      return labels;
    },
  };
}

/** Pixels of the chart that belong to a plotted line (saturated colour), not to the white background or the axes. */
async function linePixels(png: Buffer): Promise<number> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  let n = 0;
  for (let i = 0; i < info.width * info.height * 3; i += 3) {
    const max = Math.max(data[i]!, data[i + 1]!, data[i + 2]!);
    const min = Math.min(data[i]!, data[i + 1]!, data[i + 2]!);
    if (max - min > 80) n++;
  }
  return n;
}

/** Pixels of a faint cyan (typing's colour, hue 180°, as a shaded span over the white plot), not of a line. */
async function cyanTintPixels(png: Buffer): Promise<number> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  let n = 0;
  for (let i = 0; i < info.width * info.height * 3; i += 3) {
    const [r, g, b] = [data[i]!, data[i + 1]!, data[i + 2]!];
    if (r >= 150 && g - r >= 20 && b - r >= 20 && Math.abs(g - b) <= 15) n++;
  }
  return n;
}

/** One full session: start, type, mark a label by click and by key, check the chart, stop, leave the picker. */
async function session(page: DemoPage, browser: string, demo: DemoServer): Promise<string> {
  const { server, received } = demo;
  await page.goto(server.url);
  await page.waitFor(() => document.querySelectorAll('button.label').length > 0, 10_000);
  const started = Date.now();
  await page.click('#start');
  // A busy page (a slow machine, a heavy tab): its main thread is blocked 150 ms at a time until the first prediction,
  // so the first audio frames wait in the worklet's port before the page stamps them. The page must still keep its
  // promises: no bound ahead of the clock that stamps video and text, so none of those arrive late.
  await page.evaluate(() => {
    const until = performance.now() + 10_000;
    const hog = (): void => {
      const end = performance.now() + 150;
      while (performance.now() < end);
      if ((window as unknown as W).__braid.count === 0 && performance.now() < until) setTimeout(hog, 5);
    };
    setTimeout(hog, 0);
  });
  // The page shows what failed (a worklet or module that did not load, a refused hello) instead of streaming:
  // stop waiting then and fail with its words, not with a timeout.
  await page.waitFor(
    () =>
      (window as unknown as W).__braid.count > 0 ||
      (document.getElementById('error')?.textContent ?? '') !== '',
    15_000,
  );
  expect(await page.evaluate(() => document.getElementById('error')?.textContent ?? '')).toBe('');
  const firstAfterMs = Date.now() - started;
  const streamId = await page.evaluate(() => (window as unknown as W).__braid.streamId);
  await page.type('#text', 'hello braid, this is typed text');
  await page.click('button.label[data-label="speech"]'); // on
  await page.keyDown('2'); // hold "motion"
  await page.waitFor(() => (window as unknown as W).__braid.count >= 6, 15_000);
  await page.keyUp('2');
  await page.click('button.label[data-label="speech"]'); // off
  await page.waitFor(() => (window as unknown as W).__braid.count >= 8, 15_000);
  const state = await page.evaluate(() => ({
    watching: (window as unknown as W).__braid.watching,
    points: (window as unknown as W).__braid.series.t.length,
    status: (window as unknown as W).__braid.status,
    audioRate: (window as unknown as W).__braid.audioRate,
  }));
  expect(state.watching).toBe(streamId);
  expect(state.points).toBeGreaterThanOrEqual(8);
  expect(state.status).toMatch(/streaming as/);
  mkdirSync('test-artifacts', { recursive: true });
  const chart = await page.screenshot('#chart', `test-artifacts/demo-chart-${browser}.png`);
  expect(await linePixels(chart)).toBeGreaterThan(200);
  // Typing's on event (thresholds 0) is a span from the first window on, shaded over the plot.
  const spans = await page.evaluate(() => (window as unknown as W).__braid.spans);
  expect(spans['typing']?.length).toBeGreaterThanOrEqual(1);
  expect(spans['typing']?.[0]?.to).toBeNull();
  const tinted = await cyanTintPixels(chart);
  expect(tinted).toBeGreaterThan(5000);
  // Microphone at the device's own rate (Firefox 44.1 kHz, Chromium 48 kHz), camera frames, typed text, labels.
  expect(state.audioRate).toBeGreaterThan(16_000);
  expect(received[streamId]?.['audio']).toBeGreaterThan(100);
  // The stream's bounds came with its audio (ready.accepts.frameBounds) or, where a frame ran ahead of the clock, in
  // the page's 20 ms progress message in its place: about one per frame, never a second one beside a flagged frame.
  expect(received[streamId]?.['progress']).toBeLessThanOrEqual(
    (received[streamId]?.['audio'] ?? 0) * 1.1 + 5,
  );
  expect(received[streamId]?.['progress']).toBeGreaterThan((received[streamId]?.['audio'] ?? 0) / 2);
  // The page's worklet ends a frame on every window end of the stream's grid (ready.windowing), so a window closes
  // as its last sample arrives. The grid reaches the worklet once the page has handled the first frame, and on a
  // busy machine the worklet may have cut several frames more by then: from the first frame that ends on a window
  // end (the grid in use), no frame runs past a window end (by a sample or more), and one ends on each.
  const grid = demo.gridOf(streamId);
  const all = demo.audioFrames[streamId]!;
  const onWindowEnd = (f: AudioFrameSpan) => {
    const end = windowEndAfter(grid, f.time);
    return f.end >= end && f.end - end < 1e6 / f.sampleRate;
  };
  const first = all.findIndex(onWindowEnd);
  expect(first).toBeGreaterThanOrEqual(0);
  expect(first).toBeLessThan(all.length / 2);
  const frames = all.slice(first);
  const straddling = frames.filter((f) => {
    const end = windowEndAfter(grid, f.time);
    return f.end - end >= 1e6 / f.sampleRate;
  });
  expect(straddling).toEqual([]);
  expect(frames.filter(onWindowEnd).length).toBeGreaterThanOrEqual(frames.length / 30);
  expect(received[streamId]?.['video']).toBeGreaterThan(5);
  expect(received[streamId]?.['text']).toBeGreaterThan(0);
  expect(received[streamId]?.['label']).toBe(4);
  // Nothing the page sent came late or was refused, all session long (the page shows the last error until Start).
  expect(await page.evaluate(() => document.getElementById('error')?.textContent ?? '')).toBe('');
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  expect(metric(metrics, 'braid_late_events_total', '{modality="video"}')).toBe(0);
  expect(metric(metrics, 'braid_late_events_total', '{modality="text"}')).toBe(0);
  await page.click('#stop');
  // The stream closed: it leaves the picker.
  await page.waitFor(
    () =>
      !Array.from(document.querySelectorAll('#watch option')).some(
        (o) => (o as HTMLOptionElement).value === (window as unknown as W).__braid.streamId,
      ),
    10_000,
  );
  await eventually(() => !server.activeStreams().includes(streamId));
  expect(page.errors).toEqual([]);
  // Not a timing target (those are benchmarks): the first prediction must simply come while the page is live.
  expect(firstAfterMs).toBeLessThan(15_000);
  return streamId;
}

describe.skipIf(!hasChromium)('demo page in real headless Chromium', () => {
  it('streams microphone, camera, text and labels, charts its predictions, leaves the picker on stop', async () => {
    const browser = await chromium.launch({
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
    try {
      const p = await browser.newPage({ viewport: { width: 1100, height: 820 } });
      const errors: string[] = [];
      p.on('pageerror', (e) => errors.push(e.message));
      const page: DemoPage = {
        goto: (url) => p.goto(url),
        click: (s) => p.click(s),
        type: (s, t) => p.type(s, t),
        keyDown: (k) => p.keyboard.down(k),
        keyUp: (k) => p.keyboard.up(k),
        evaluate: (fn) => p.evaluate(fn),
        waitFor: (fn, timeout) => p.waitForFunction(fn, undefined, { timeout }),
        screenshot: (s, path) => p.locator(s).screenshot({ path }),
        errors,
      };
      const demo = await demoServer();
      const streamId = await session(page, 'chromium', demo);

      // Microphone only: a machine without a camera still streams.
      await p.reload();
      await p.waitForFunction(() => document.querySelectorAll('button.label').length > 0);
      await p.uncheck('#use-cam');
      await p.click('#start');
      await p.waitForFunction(() => (window as unknown as W).__braid.count >= 2, undefined, {
        timeout: 15_000,
      });
      const micOnly = await p.evaluate(() => (window as unknown as W).__braid.streamId);
      expect(demo.received[micOnly]?.['audio']).toBeGreaterThan(25); // 20 ms frames: over half a second of audio;
      expect(demo.received[micOnly]?.['video']).toBeUndefined();
      await p.click('#stop');
      expect(errors).toEqual([]);
      expect(await demo.labelsOf(streamId)).toEqual([
        { speech: 1 },
        { motion: 1 },
        { motion: 0 },
        { speech: 0 },
      ]);
    } finally {
      await browser.close();
    }
  }, 90_000);
});

describe.skipIf(!hasFirefox)('demo page in real headless Firefox (WebDriver BiDi)', () => {
  it('streams microphone, camera, text and labels, charts its predictions, leaves the picker on stop', async () => {
    const pulse = await startPulseAudio();
    const browser = await puppeteer.launch({
      browser: 'firefox',
      executablePath: '/usr/bin/firefox-esr',
      headless: true,
      env: { ...process.env, ...pulse.env },
      extraPrefsFirefox: {
        'media.navigator.streams.fake': true,
        'media.navigator.permission.disabled': true,
        'media.autoplay.default': 0,
      },
    });
    try {
      const p = await browser.newPage();
      await p.setViewport({ width: 1100, height: 820 });
      const errors: string[] = [];
      p.on('pageerror', (e) => errors.push(e instanceof Error ? e.message : String(e)));
      const page: DemoPage = {
        goto: (url) => p.goto(url),
        click: (s) => p.click(s),
        type: (s, t) => p.type(s, t),
        keyDown: (k) => p.keyboard.down(k as never),
        keyUp: (k) => p.keyboard.up(k as never),
        evaluate: (fn) => p.evaluate(fn),
        waitFor: (fn, timeout) => p.waitForFunction(fn, { timeout }),
        screenshot: async (s, path) => {
          const element = await p.$(s);
          return Buffer.from(await element!.screenshot({ path: path as `${string}.png` }));
        },
        errors,
      };
      const demo = await demoServer();
      const streamId = await session(page, 'firefox', demo);
      expect(await demo.labelsOf(streamId)).toEqual([
        { speech: 1 },
        { motion: 1 },
        { motion: 0 },
        { speech: 0 },
      ]);
    } finally {
      await browser.close();
      pulse.stop();
    }
  }, 90_000);
});
