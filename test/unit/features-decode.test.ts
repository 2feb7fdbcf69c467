import { concat, firstValueFrom, from, throwError, toArray } from 'rxjs';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { InvalidOptionError } from '../../src/core/errors.js';
import type { AnySourceEvent, StreamInput } from '../../src/core/events.js';
import { FlowCredit } from '../../src/core/flow-credit.js';
import { decodeCompressedFrames } from '../../src/features/decode-frames.js';
import { DropCounter } from '../../src/sources/drop-counter.js';

const W = 320;
const H = 240;
let jpeg: Uint8Array;
let pngWithAlpha: Uint8Array;

/** Horizontal gradient: luma depends on x only, so every thumbnail column has a known mean. */
const gradient = (x: number): number => Math.round((x * 255) / (W - 1));

beforeAll(async () => {
  const rgb = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) rgb.fill(gradient(x), 3 * (y * W + x), 3 * (y * W + x) + 3);
  jpeg = await sharp(rgb, { raw: { width: W, height: H, channels: 3 } })
    .jpeg({ quality: 95 })
    .toBuffer();
  // Opaque alpha: resizing premultiplies by alpha, which would round a translucent 200 to 198.
  const rgba = new Uint8Array(40 * 30 * 4).map((_, i) => (i % 4 === 3 ? 255 : 200));
  pngWithAlpha = await sharp(rgba, { raw: { width: 40, height: 30, channels: 4 } })
    .png()
    .toBuffer();
});

let seq = 0;
const video = (streamId: string, format: 'jpeg' | 'png', data: Uint8Array): AnySourceEvent => ({
  streamId,
  modality: 'video',
  time: seq * 1000,
  seq: seq++,
  payload: { format, data },
});
const text = (streamId: string, value: string): AnySourceEvent => ({
  streamId,
  modality: 'text',
  time: seq * 1000,
  seq: seq++,
  payload: { text: value },
});

const run = (events: AnySourceEvent[], drops: DropCounter, extra: object = {}): Promise<AnySourceEvent[]> =>
  firstValueFrom(from(events).pipe(decodeCompressedFrames<AnySourceEvent>({ drops, ...extra }), toArray()));

describe('decodeCompressedFrames', () => {
  it('decodes a 320x240 JPEG straight to a 16x12 gray raw frame with the right content', async () => {
    const drops = new DropCounter();
    const [out] = await run([video('a', 'jpeg', jpeg)], drops);
    expect(out?.modality).toBe('video');
    const payload = out!.payload as { format: string; width: number; height: number; data: Uint8Array };
    expect(payload.format).toBe('gray');
    expect([payload.width, payload.height, payload.data.byteLength]).toEqual([16, 12, 192]);
    for (let j = 0; j < 16; j++) {
      // Column j covers x in [20j, 20j + 20): its mean luma is the gradient at x = 20j + 9.5.
      const expected = ((20 * j + 9.5) * 255) / (W - 1);
      for (let i = 0; i < 12; i++) expect(Math.abs(payload.data[i * 16 + j]! - expected)).toBeLessThan(6);
    }
    expect(drops.total).toBe(0);
  });

  it('drops alpha from PNG, reads greyscale JPEG, and can keep colour as rgb at another size', async () => {
    const drops = new DropCounter();
    const [gray] = await run([video('a', 'png', pngWithAlpha)], drops);
    // Grey comes from Rec. 601 luma computed on the small frame: a neutral 200 stays 200.
    expect((gray!.payload as { data: Uint8Array }).data).toEqual(new Uint8Array(192).fill(200));
    const [rgb] = await run([video('a', 'png', pngWithAlpha)], drops, { width: 8, height: 6, format: 'rgb' });
    expect(rgb?.payload).toMatchObject({ format: 'rgb', width: 8, height: 6 });
    expect((rgb!.payload as { data: Uint8Array }).data).toEqual(new Uint8Array(8 * 6 * 3).fill(200));
    const greyJpeg = await sharp(new Uint8Array(64 * 48).fill(90), {
      raw: { width: 64, height: 48, channels: 1 },
    })
      .jpeg()
      .toBuffer();
    for (const format of ['gray', 'rgb'] as const) {
      const [out] = await run([video('a', 'jpeg', greyJpeg)], drops, { format });
      const data = (out!.payload as { data: Uint8Array }).data;
      expect(data.byteLength).toBe(format === 'gray' ? 192 : 576);
      expect(data.every((v) => Math.abs(v - 90) <= 1)).toBe(true);
    }
    expect(drops.total).toBe(0);
  });

  it('counts and drops empty and corrupt images; the stream goes on', async () => {
    const drops = new DropCounter();
    const events = [
      video('a', 'jpeg', new Uint8Array(0)),
      video('a', 'jpeg', jpeg.subarray(0, 200)),
      video('a', 'png', new TextEncoder().encode('not a png at all')),
      text('a', 'after'),
      video('a', 'jpeg', jpeg),
    ];
    const out = await run(events, drops);
    expect(out.map((e) => e.seq)).toEqual([events[3]!.seq, events[4]!.seq]);
    expect(drops.snapshot()).toEqual({ empty_image: 1, corrupt_image: 2 });
    expect(drops.lastError('corrupt_image')?.message).toMatch(
      /stream "a" video seq \d+: cannot decode (jpeg|png): ./,
    );
  });

  it('keeps each stream’s order while several decodes run, and does not hold other streams back', async () => {
    const drops = new DropCounter();
    const events = [
      video('a', 'jpeg', jpeg),
      text('a', 'a1'),
      video('a', 'jpeg', jpeg),
      text('b', 'b1'),
      video('b', 'png', pngWithAlpha),
      text('a', 'a2'),
      text('b', 'b2'),
      video('a', 'png', pngWithAlpha),
      text('a', 'a3'),
    ];
    const out = await run(events, drops, { concurrency: 3 });
    const order = (id: string, list: AnySourceEvent[]) =>
      list.filter((e) => e.streamId === id).map((e) => e.seq);
    expect(out).toHaveLength(events.length);
    expect(order('a', out)).toEqual(order('a', events));
    expect(order('b', out)).toEqual(order('b', events));
    // b1 waits for nothing of its own stream: it leaves before a's first JPEG is decoded.
    expect(out[0]?.seq).toBe(events[3]!.seq);
    expect(
      out
        .filter((e) => e.modality === 'video')
        .every((e) => (e.payload as { format: string }).format === 'gray'),
    ).toBe(true);
  });

  it('drops images beyond maxPending as decode_backlog', async () => {
    const drops = new DropCounter();
    const out = await run(
      [video('a', 'jpeg', jpeg), video('a', 'jpeg', jpeg), video('a', 'jpeg', jpeg)],
      drops,
      {
        maxPending: 1,
      },
    );
    expect(out).toHaveLength(1);
    expect(drops.count('decode_backlog')).toBe(2);
  });

  it('counts and drops an image event without bytes instead of crashing the process', async () => {
    const drops = new DropCounter();
    const noData = { ...video('a', 'jpeg', jpeg), payload: { format: 'jpeg' } } as unknown as AnySourceEvent;
    const notBytes = {
      ...video('b', 'png', jpeg),
      payload: { format: 'png', data: 'abc' },
    } as unknown as AnySourceEvent;
    const nullPayload = { ...text('c', 'x'), modality: 'video', payload: null } as unknown as AnySourceEvent;
    const after = text('a', 'after');
    const out = await run([noData, notBytes, nullPayload, after], drops);
    // A video event with no payload at all is not an image: it passes on for validation downstream.
    expect(out).toEqual([nullPayload, after]);
    expect(drops.snapshot()).toEqual({ bad_video: 2 });
    expect(drops.lastError('bad_video')?.message).toMatch(
      /stream "b" video seq \d+: image payload.data must be a Uint8Array .*got string/,
    );
  });

  it('on a source error, first emits what was taken in (images decoded, events behind them), then errors', async () => {
    const drops = new DropCounter();
    const events = [video('a', 'jpeg', jpeg), text('a', 'behind the image'), text('b', 'free')];
    const failure = new Error('camera unplugged');
    const out: AnySourceEvent[] = [];
    const error = await new Promise<unknown>((resolve) => {
      concat(
        from(events),
        throwError(() => failure),
      )
        .pipe(decodeCompressedFrames<AnySourceEvent>({ drops }))
        .subscribe({ next: (e) => out.push(e), error: resolve, complete: () => resolve('completed') });
    });
    expect(error).toBe(failure);
    expect(out.map((e) => e.seq)).toEqual([events[2]!.seq, events[0]!.seq, events[1]!.seq]);
    expect((out[1]!.payload as { format: string }).format).toBe('gray');
    expect(drops.total).toBe(0);
  });

  it('counts events queued behind an image toward maxPending, but never drops a stream control', async () => {
    const drops = new DropCounter();
    const close: StreamInput = { control: 'close', streamId: 'a' };
    const input: StreamInput[] = [
      video('a', 'jpeg', jpeg),
      text('a', 'one'),
      text('a', 'two'),
      close,
      video('a', 'jpeg', jpeg),
      text('b', 'other stream, nothing held'),
    ];
    const out = await firstValueFrom(
      from(input).pipe(
        decodeCompressedFrames<StreamInput>({ drops, maxPending: 2, maxPendingPerStream: 2 }),
        toArray(),
      ),
    );
    expect(out).toEqual([
      input[5],
      expect.objectContaining({ seq: (input[0] as AnySourceEvent).seq }),
      input[1],
      close,
    ]);
    expect(drops.snapshot()).toEqual({ decode_backlog: 2 });
    expect(drops.lastError('decode_backlog')?.message).toMatch(/image dropped, 3 events already held/);
  });

  it('a stream flooding the decoder with images drops its own events, not another stream’s, nor delays them', async () => {
    const drops = new DropCounter();
    // 100 images of "flood" in one burst, then "quiet" sends an image and an event behind it.
    const flood = Array.from({ length: 100 }, () => video('flood', 'jpeg', jpeg));
    const quiet = [video('quiet', 'jpeg', jpeg), text('quiet', 'after its image')];
    // One decode at a time: images leave in the order their decodes start.
    const out = await run([...flood, ...quiet], drops, { maxPending: 64, concurrency: 1 });
    // flood may hold a quarter of the 64: the rest of its burst is its own loss, quiet loses nothing.
    expect(out.filter((e) => e.streamId === 'flood')).toHaveLength(16);
    expect(out.filter((e) => e.streamId === 'quiet').map((e) => e.seq)).toEqual(quiet.map((e) => e.seq));
    expect(drops.snapshot()).toEqual({ decode_backlog: 84 });
    expect(drops.lastError('decode_backlog')?.message).toMatch(
      /stream "flood" video seq \d+: image dropped, this stream holds 16 events .*maxPendingPerStream 16/,
    );
    // The decode slot goes round the streams: quiet's image is decoded after flood's second, not after its sixteenth.
    expect(out.findIndex((e) => e.streamId === 'quiet')).toBe(2);
  });

  it('under a credit (a replay: one producer waiting) one stream may hold everything', async () => {
    const drops = new DropCounter();
    const credit = new FlowCredit().lane('decode', 8);
    const out = await run(
      Array.from({ length: 8 }, () => video('only', 'jpeg', jpeg)),
      drops,
      { maxPending: 8, credit },
    );
    expect(out).toHaveLength(8);
    expect(drops.total).toBe(0);
  });

  it('rejects bad options naming them', () => {
    const drops = new DropCounter();
    expect(() => decodeCompressedFrames({ drops, concurrency: 0 })).toThrow(InvalidOptionError);
    expect(() => decodeCompressedFrames({ drops, width: 1.5 })).toThrow(/option "width"/);
    expect(() => decodeCompressedFrames({ drops, format: 'bmp' as 'gray' })).toThrow(/option "format"/);
  });
});
