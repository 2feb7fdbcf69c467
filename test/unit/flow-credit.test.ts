import { from, lastValueFrom, toArray } from 'rxjs';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import type { AnySourceEvent } from '../../src/core/events.js';
import { FlowCredit } from '../../src/core/flow-credit.js';
import { decodeCompressedFrames } from '../../src/features/decode-frames.js';
import { fromIterableWithCredit } from '../../src/sources/credited-iterable.js';
import { DropCounter } from '../../src/sources/drop-counter.js';

describe('FlowCredit', () => {
  it('lets the producer go on while every lane has credit, and wakes it once each has half back', async () => {
    const credit = new FlowCredit();
    const a = credit.lane('a', 4);
    const b = credit.lane('b', 2);
    expect(credit.ready()).toBeUndefined();
    a.take(4);
    const wait = credit.ready();
    expect(wait).toBeInstanceOf(Promise);
    expect(credit.ready()).toBe(wait);
    let woke = false;
    void wait!.then(() => (woke = true));
    a.give(1);
    await Promise.resolve();
    expect(woke).toBe(false); // 3 of 4 still in use: more than half
    b.take(2);
    a.give(1);
    await Promise.resolve();
    expect(woke).toBe(false); // a is at half, but b has none left
    b.give(1);
    await Promise.resolve();
    expect(woke).toBe(true);
    expect(credit.ready()).toBeUndefined();
    expect(credit.snapshot()).toEqual({
      a: { credits: 4, inUse: 2, peak: 4 },
      b: { credits: 2, inUse: 1, peak: 2 },
    });
  });

  it('refuses credits given back that were never taken, and lanes without credits', () => {
    const credit = new FlowCredit();
    const lane = credit.lane('decode', 2);
    lane.take();
    expect(() => lane.give(2)).toThrow(/2 credits given back, only 1 in use/);
    expect(() => credit.lane('x', 0)).toThrow(/option "credits"/);
  });
});

describe('decodeCompressedFrames under a producer that honours its credits', () => {
  async function events(): Promise<AnySourceEvent[]> {
    const jpeg = new Uint8Array(
      await sharp({ create: { width: 160, height: 120, channels: 3, background: { r: 90, g: 10, b: 200 } } })
        .jpeg()
        .toBuffer(),
    );
    const out: AnySourceEvent[] = [];
    // One camera: every event of the stream waits behind the images before it, so a fast producer fills the queue.
    for (let i = 0; i < 400; i++) {
      out.push({
        streamId: 'cam',
        modality: 'video',
        time: i * 1000,
        seq: i,
        payload: { format: 'jpeg', data: jpeg },
      });
      out.push({ streamId: 'cam', modality: 'text', time: i * 1000, seq: i, payload: { text: `${i}` } });
    }
    return out;
  }

  it('drops nothing, holds no more than its credits, and keeps the order; pushed as fast as read, it drops', async () => {
    const input = await events();
    const credit = new FlowCredit();
    const lane = credit.lane('decode', 64);
    const drops = new DropCounter();
    const out = await lastValueFrom(
      fromIterableWithCredit(input, credit).pipe(
        decodeCompressedFrames<AnySourceEvent>({ drops, credit: lane, maxPending: 64 }),
        toArray(),
      ),
    );
    expect(drops.total).toBe(0);
    expect(out.map((e) => `${e.modality}${e.seq}`)).toEqual(input.map((e) => `${e.modality}${e.seq}`));
    expect(lane.peak).toBeLessThanOrEqual(64);
    expect(lane.inUse).toBe(0);
    // The same input pushed without waiting: the decoder has to drop what it cannot hold, and counts it.
    const pushed = new DropCounter();
    await lastValueFrom(
      from(input).pipe(decodeCompressedFrames<AnySourceEvent>({ drops: pushed, maxPending: 64 }), toArray()),
    );
    expect(pushed.count('decode_backlog')).toBeGreaterThan(0);
  });

  it('refuses a lane with more credits than it can hold', () => {
    const lane = new FlowCredit().lane('decode', 300);
    expect(() => decodeCompressedFrames({ drops: new DropCounter(), credit: lane })).toThrow(
      /more than maxPending 256/,
    );
  });
});
