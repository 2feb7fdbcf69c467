import { mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  asyncScheduler,
  firstValueFrom,
  lastValueFrom,
  type SchedulerAction,
  type SchedulerLike,
  take,
  toArray,
} from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AnySourceEvent, InvalidOptionError } from '../../src/core/index.js';
import { McapRecorder, RecordingError, replayRecording } from '../../src/record/index.js';
import { eventually } from '../helpers/source-assertions.js';

const T0 = 9_000_000_000;
let dir: string;
/** 1 s of one stream: audio every 10 ms, gray video every 100 ms, text every 250 ms (155 events). */
let second: string;
let secondEvents: AnySourceEvent[];

function oneSecond(streamId: string): AnySourceEvent[] {
  const events: AnySourceEvent[] = [];
  for (let i = 0; i <= 100; i += 1)
    events.push({
      streamId,
      modality: 'audio',
      time: T0 + i * 10_000,
      seq: i,
      payload: { sampleRate: 16000, channels: 1, samples: new Int16Array(160).fill(i) },
    });
  for (let i = 0; i <= 10; i += 1)
    events.push({
      streamId,
      modality: 'video',
      time: T0 + i * 100_000 + 7,
      seq: i,
      payload: { format: 'gray', width: 4, height: 4, data: new Uint8Array(16).fill(i) },
    });
  for (let i = 0; i <= 4; i += 1)
    events.push({ streamId, modality: 'text', time: T0 + i * 250_000, seq: i, payload: { text: `w${i}` } });
  return events.sort((a, b) => a.time - b.time);
}

async function record(
  name: string,
  events: readonly AnySourceEvent[],
  chunkBytes = 16 * 1024,
): Promise<string> {
  const path = join(dir, name);
  const recorder = await McapRecorder.create(path, { chunkBytes });
  for (const e of events) void recorder.write(e);
  await recorder.close();
  return path;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'braid-replay-'));
  secondEvents = oneSecond('s');
  second = await record('second.mcap', secondEvents);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Replays and notes when each event arrived (ms after subscribing). */
async function timed(options: Parameters<typeof replayRecording>[1]) {
  const start = performance.now();
  const arrivals: { event: AnySourceEvent; at: number }[] = [];
  await new Promise<void>((resolve, reject) =>
    replayRecording(second, options).subscribe({
      next: (event) => arrivals.push({ event, at: performance.now() - start }),
      error: reject,
      complete: resolve,
    }),
  );
  return { arrivals, elapsed: performance.now() - start };
}

const openFilesOf = (path: string) =>
  readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false;
    }
  }).length;

describe('replayRecording', () => {
  it('gives the same events in the same order at every speed', async () => {
    // 'max' does not pace: it never asks its scheduler for a timer.
    let timers = 0;
    const counting: SchedulerLike = {
      now: () => asyncScheduler.now(),
      schedule: (...args: Parameters<SchedulerLike['schedule']>) => {
        timers += 1;
        return asyncScheduler.schedule(...args);
      },
    };
    const max = await lastValueFrom(
      replayRecording(second, { speed: 'max', scheduler: counting }).pipe(toArray()),
    );
    expect(timers).toBe(0);
    const fast = await lastValueFrom(replayRecording(second, { speed: 50 }).pipe(toArray()));
    expect(max).toEqual(secondEvents);
    expect(fast).toEqual(max);
  });

  it('paces by originating time: speed 4 plays 1 s in about 250 ms, each event not before its due time', async () => {
    const { arrivals, elapsed } = await timed({ speed: 4 });
    expect(elapsed).toBeGreaterThanOrEqual(245);
    expect(elapsed).toBeLessThan(900);
    const first = arrivals[0]!;
    for (const { event, at } of arrivals) {
      const due = first.at + (event.time - first.event.time) / 1000 / 4;
      expect(at, `event at ${event.time}`).toBeGreaterThanOrEqual(due - 2);
    }
  });

  it('follows the scheduler it is given (a clock running 10× fast plays 1 s at speed 1 in ~100 ms)', async () => {
    const fastClock: SchedulerLike = {
      now: () => performance.now() * 10,
      schedule<T>(work: (this: SchedulerAction<T>, state?: T) => void, delay = 0, state?: T) {
        return asyncScheduler.schedule(work, delay / 10, state);
      },
    };
    const { elapsed } = await timed({ speed: 1, scheduler: fastClock });
    expect(elapsed).toBeGreaterThanOrEqual(95);
    expect(elapsed).toBeLessThan(600);
  });

  it('loops with times shifted by duration + loopGap and seqs that keep counting', async () => {
    const n = secondEvents.length;
    const looped = await lastValueFrom(
      replayRecording(second, { speed: 'max', loop: true, loopGap: 10_000 }).pipe(take(3 * n), toArray()),
    );
    // Period: first to last event of one pass (the last video frame is at +1 s + 7 µs), plus the gap.
    const period = 1_000_007 + 10_000;
    const seqSpan = { audio: 101, video: 11, text: 5, label: 0 };
    for (let k = 0; k < 3; k += 1)
      expect(looped.slice(k * n, (k + 1) * n)).toEqual(
        secondEvents.map((e) => ({ ...e, time: e.time + k * period, seq: e.seq + k * seqSpan[e.modality] })),
      );
    for (let i = 1; i < looped.length; i += 1)
      expect(looped[i]!.time).toBeGreaterThanOrEqual(looped[i - 1]!.time);
  });

  it('stops reading and closes the file when unsubscribed', async () => {
    const slow = replayRecording(second, { speed: 0.01 });
    const first = await firstValueFrom(slow);
    expect(first).toEqual(secondEvents[0]);
    await eventually(() => openFilesOf(second) === 0);
  });

  it('replays a from/to range of given streams', async () => {
    const two = await record('two.mcap', [...oneSecond('a'), ...oneSecond('b')]);
    const got = await lastValueFrom(
      replayRecording(two, { speed: 'max', from: 200_000, to: 300_000, streams: ['b'] }).pipe(toArray()),
    );
    expect(got).toEqual(oneSecond('b').filter((e) => e.time - T0 >= 200_000 && e.time - T0 < 300_000));
  });

  it('refuses bad options at once and reports unreadable files as the stream error', async () => {
    expect(() => replayRecording(second, { speed: 0 })).toThrow(InvalidOptionError);
    expect(() => replayRecording(second, { speed: Number.NaN })).toThrow(/option "speed"/);
    expect(() => replayRecording(second, { loopGap: 0 })).toThrow(/option "loopGap"/);
    const notMcap = join(dir, 'not.mcap');
    writeFileSync(notMcap, 'nope nope');
    await expect(lastValueFrom(replayRecording(notMcap, { speed: 'max' }))).rejects.toThrow(RecordingError);
    await expect(lastValueFrom(replayRecording(second, { speed: 'max', from: 5_000_000 }))).rejects.toThrow(
      /past the end/,
    );
  });
});
