import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import {
  asReplayLines,
  braid,
  killAll,
  replayOffset,
  serveOn,
  subscribeAll,
} from '../helpers/braid-process.js';

// bin/braid.js runs dist/: the suite's pretest builds it (`npm run build` before running this file alone).
const DEMO = 'streams/demo.mcap';
const HOP = 500_000;

afterEach(() => killAll());

describe('braid replay --to', () => {
  it('plays a recording into a running braid serve as live producers, with the predictions of a local replay', async () => {
    const local = execFileSync(process.execPath, ['bin/braid.js', 'replay', DEMO, '--to', '6s'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const expected = local.split('\n').filter(Boolean).length;
    expect(expected).toBeGreaterThan(5);
    const server = await serveOn(['--backend', 'cpu-fused']);
    const sub = await subscribeAll(server.url);
    const replay = braid([
      'replay',
      DEMO,
      '--until',
      '6s',
      '--speed',
      '4',
      '--to',
      `${server.url.replace('http', 'ws')}/ingest`,
    ]);
    const offset = await replayOffset(replay);
    expect(offset % HOP).toBe(0);
    expect(await replay.exited()).toBe(0);
    await sub.count(expected);
    expect(asReplayLines(sub.predictions, offset, HOP)).toBe(local);
    expect(replay.log()).toMatch(/"event":"replayed_to"/);
    sub.close();
  }, 90_000);

  it('at full speed, lets the frames carry the progress bounds and still gives the predictions of a local replay', async () => {
    const local = execFileSync(process.execPath, ['bin/braid.js', 'replay', DEMO, '--to', '6s'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const expected = local.split('\n').filter(Boolean).length;
    const server = await serveOn(['--backend', 'cpu-fused']);
    const sub = await subscribeAll(server.url);
    const replay = braid([
      'replay',
      DEMO,
      '--until',
      '6s',
      '--speed',
      'max',
      '--to',
      `${server.url.replace('http', 'ws')}/ingest`,
    ]);
    const offset = await replayOffset(replay);
    expect(await replay.exited()).toBe(0);
    await sub.count(expected);
    expect(asReplayLines(sub.predictions, offset, HOP)).toBe(local);
    const done = replay
      .log()
      .split('\n')
      .filter((line) => line.includes('"event":"replayed_to"'))
      .map(
        (line) =>
          JSON.parse(line) as { sent: Record<string, number>; bounds: { frames: number; messages: number } },
      )[0];
    expect(done).toBeDefined();
    const events = Object.values(done!.sent).reduce((a, b) => a + b, 0);
    // Read ahead at full speed, nearly every frame is its own bound: few progress messages are left.
    expect(done!.bounds.frames).toBeGreaterThan(events / 2);
    expect(done!.bounds.messages).toBeLessThan(done!.bounds.frames / 10);
    sub.close();
  }, 90_000);

  it('refuses a --to URL with --out, and a server that is not there, with a clear error and a non-zero exit', async () => {
    const both = braid(['replay', DEMO, '--to', 'ws://127.0.0.1:1/ingest', '--out', 'x.ndjson']);
    expect(await both.exited()).toBe(2);
    expect(both.log()).toMatch(/option "out": a replay into a server .* writes no output file/);
    const none = braid(['replay', DEMO, '--to', 'ws://127.0.0.1:1/ingest']);
    expect(await none.exited()).toBe(1);
    expect(none.log()).toMatch(/could not connect to ws:\/\/127\.0\.0\.1:1/);
  }, 60_000);
});
