import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { frameSamplesToWindowEnd, sampleIndexAt, windowEndAfter } from '../../src/client/window-grid.js';
import { InvalidOptionError } from '../../src/core/errors.js';
import { capturedThrough } from '../../src/core/events.js';
import { audioFileSource, ffmpegAudioArgs } from '../../src/sources/audio-file.js';
import { LineSplitter } from '../../src/sources/child-process.js';
import { FixedSizeChunker } from '../../src/sources/fixed-size-chunker.js';
import { frameSamplesFor, PcmFramer } from '../../src/sources/pcm-framer.js';
import { ffmpegVideoArgs, videoSource } from '../../src/sources/video.js';

function splitAt(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const parts: Uint8Array[] = [];
  let last = 0;
  for (const p of [...points, bytes.length]) {
    parts.push(bytes.subarray(last, p));
    last = p;
  }
  return parts;
}

describe('PcmFramer', () => {
  it('gives the same frames and stamps wherever the chunks are cut, even inside a sample', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: -32768, max: 32767 }), { minLength: 1, maxLength: 2000 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (values, cuts) => {
          const pcm = Int16Array.from(values);
          const bytes = new Uint8Array(pcm.buffer);
          const framer = new PcmFramer({
            streamId: 's',
            sampleRate: 16_000,
            frameSamples: 160,
            origin: 1_000,
            clock: () => 0,
          });
          const events = splitAt(bytes, cuts).flatMap((part) => framer.push(part));
          events.push(...framer.flush());
          expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i));
          expect(events.map((e) => e.time)).toEqual(events.map((_, i) => 1_000 + i * 10_000));
          const joined = Int16Array.from(events.flatMap((e) => [...e.payload.samples]));
          expect(joined).toEqual(pcm);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('places the first sample at "now minus the first chunk" when no origin is given', () => {
    const framer = new PcmFramer({
      streamId: 's',
      sampleRate: 16_000,
      frameSamples: 320,
      clock: () => 10_000_000,
    });
    const events = framer.push(new Uint8Array(3200)); // 100 ms
    expect(events.map((e) => e.time)).toEqual([9_900_000, 9_920_000, 9_940_000, 9_960_000, 9_980_000]);
  });

  it('counts a stream that ends inside a sample as a stray byte, after the whole samples', () => {
    const framer = new PcmFramer({
      streamId: 's',
      sampleRate: 16_000,
      frameSamples: 160,
      origin: 0,
      clock: () => 0,
    });
    expect(framer.push(Uint8Array.of(1, 0, 2, 0, 3))).toEqual([]);
    const [last] = framer.flush();
    expect(Array.from(last!.payload.samples)).toEqual([1, 2]);
    expect(framer.strayBytes).toBe(1);
    expect(framer.flush()).toEqual([]);
    expect(framer.strayBytes).toBe(1);
  });

  it('ends frames on window ends, wherever the chunks are cut and whatever the stream grid', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 3_000_000 }), // origin of the audio, µs
        fc.integer({ min: 0, max: 499_999 }), // the stream's window phase, µs
        fc.array(fc.nat(), { maxLength: 30 }),
        (origin, phase, cuts) => {
          const grid = { origin: phase, size: 500_000, hop: 500_000 };
          const framer = new PcmFramer({
            streamId: 's',
            sampleRate: 16_000,
            frameSamples: 320,
            origin,
            clock: () => 0,
            frameSamplesAt: (time) => frameSamplesToWindowEnd(grid, time, 16_000, 320),
          });
          const pcm = Int16Array.from({ length: 16_000 * 2 }, (_, i) => i % 30_000);
          const events = splitAt(new Uint8Array(pcm.buffer), cuts).flatMap((part) => framer.push(part));
          events.push(...framer.flush());
          // Nothing lost or reordered; stamps by sample count; each frame 0.5–1.5 of 20 ms after the first cut.
          expect(Int16Array.from(events.flatMap((e) => [...e.payload.samples]))).toEqual(pcm);
          let before = 0;
          for (const e of events) {
            expect(e.time).toBe(origin + Math.floor((before * 1_000_000) / 16_000));
            before += e.payload.samples.length;
          }
          for (const e of events.slice(1, -1)) expect(e.payload.samples.length).toBeLessThanOrEqual(480);
          // No frame runs past a window end: the end after its start is at or after its last sample's time.
          for (const e of events) {
            const end = windowEndAfter(grid, e.time);
            expect(capturedThrough(e)).toBeLessThanOrEqual(end + 62); // within a sample (62.5 µs) of the cut
            expect(sampleIndexAt(e.time, end, 16_000)).toBeGreaterThanOrEqual(e.payload.samples.length);
          }
        },
      ),
      { numRuns: 100 },
    );
  });

  it('refuses a frame length from frameSamplesAt that is not a whole positive number', () => {
    const framer = new PcmFramer({
      streamId: 's',
      sampleRate: 16_000,
      frameSamples: 320,
      origin: 0,
      clock: () => 0,
      frameSamplesAt: () => 0,
    });
    expect(() => framer.push(new Uint8Array(640))).toThrow(/frameSamplesAt.*got 0 at 0 µs/);
  });

  it('refuses an origin that is not whole non-negative µs', () => {
    for (const origin of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])
      expect(
        () => new PcmFramer({ streamId: 's', sampleRate: 16_000, frameSamples: 160, origin, clock: () => 0 }),
      ).toThrow(/option "origin": must be a non-negative integer of µs/);
  });

  it('checks frame lengths', () => {
    expect(frameSamplesFor(20, 16_000)).toBe(320);
    expect(frameSamplesFor(10, 16_000)).toBe(160);
    expect(() => frameSamplesFor(5, 16_000)).toThrow(InvalidOptionError);
    expect(() => frameSamplesFor(12.5, 16_000)).not.toThrow();
    expect(() => frameSamplesFor(10.01, 16_000)).toThrow(/not a whole number of samples/);
  });
});

describe('FixedSizeChunker and LineSplitter', () => {
  it('cuts frames across chunk boundaries', () => {
    const chunker = new FixedSizeChunker(4);
    expect(chunker.push(Uint8Array.of(1, 2, 3))).toEqual([]);
    expect(chunker.push(Uint8Array.of(4, 5, 6, 7, 8, 9))).toEqual([
      Uint8Array.of(1, 2, 3, 4),
      Uint8Array.of(5, 6, 7, 8),
    ]);
    expect(chunker.partialBytes).toBe(1);
  });

  it('hands over the unfinished frame', () => {
    const chunker = new FixedSizeChunker(4);
    chunker.push(Uint8Array.of(1, 2, 3, 4, 5, 6));
    expect(chunker.takePartial()).toEqual(Uint8Array.of(5, 6));
    expect(chunker.partialBytes).toBe(0);
    expect(chunker.push(Uint8Array.of(7, 8, 9, 10))).toEqual([Uint8Array.of(7, 8, 9, 10)]);
  });

  it('decodes UTF-8 characters cut between chunks', () => {
    const bytes = Buffer.from('général 日本 ok\nsecond ✓ line\n');
    for (let cut = 1; cut < bytes.length; cut++) {
      const lines = new LineSplitter();
      const out = [...lines.push(bytes.subarray(0, cut)), ...lines.push(bytes.subarray(cut)), ...lines.end()];
      expect(out).toEqual(['général 日本 ok', 'second ✓ line']);
    }
    const lines = new LineSplitter();
    expect(lines.push(Buffer.from([0x61, 0xe6]))).toEqual([]);
    expect(lines.push(Buffer.from([0x97, 0xa5, 0x0a]))).toEqual(['a日']);
  });

  it('splits lines on \\n, \\r\\n and \\r and keeps a tail of chosen lines', () => {
    const lines = new LineSplitter((line) => !line.startsWith('noise'));
    expect(lines.push('a\r\nnoise 1\rb')).toEqual(['a', 'noise 1']);
    expect(lines.push('c\n\n')).toEqual(['bc']);
    expect(lines.push('last')).toEqual([]);
    expect(lines.end()).toEqual(['last']);
    expect(lines.tail()).toBe('a | bc | last');
  });
});

describe('ffmpeg command lines', () => {
  it('camera input per platform API', () => {
    const args = (input: object) =>
      ffmpegVideoArgs({ streamId: 'c', input: { kind: 'camera', ...input } as never }).join(' ');
    expect(args({ inputFormat: 'v4l2', fps: 15, captureWidth: 640, captureHeight: 480 })).toContain(
      '-f v4l2 -framerate 15 -video_size 640x480 -i /dev/video0',
    );
    expect(args({ inputFormat: 'avfoundation', fps: 30 })).toContain(
      '-f avfoundation -framerate 30 -i 0:none',
    );
    expect(args({ inputFormat: 'dshow', device: 'Integrated Camera' })).toContain(
      '-f dshow -i video=Integrated Camera',
    );
    expect(() => args({ inputFormat: 'dshow' })).toThrow(/option "input\.device"/);
    expect(() => args({ inputFormat: 'v4l2', captureWidth: 640 })).toThrow(
      /captureWidth and captureHeight go together/,
    );
  });

  it('file input, output size, format and timestamps', () => {
    const args = ffmpegVideoArgs({
      streamId: 'f',
      input: { kind: 'file', path: 'clip.mp4', pace: 'realtime', fps: 5 },
      width: 32,
      height: 24,
      pixelFormat: 'rgb',
    }).join(' ');
    expect(args).toContain('-re -i clip.mp4');
    expect(args).toContain('-vf fps=5,scale=32:24:flags=area,format=rgb24,settb=AVTB,showinfo');
    expect(args).toContain('-fps_mode passthrough -f rawvideo -pix_fmt rgb24 pipe:1');
    expect(() => ffmpegVideoArgs({ streamId: 'f', input: { kind: 'file', path: 'x' }, width: 0 })).toThrow(
      /option "width"/,
    );
  });

  it('audio files: mono 16 kHz PCM16 from the first audio stream', () => {
    expect(ffmpegAudioArgs({ streamId: 'a', path: 'a.mp3', pace: 'realtime' }).join(' ')).toContain(
      '-re -i a.mp3 -map 0:a:0 -ac 1 -ar 16000 -f s16le -acodec pcm_s16le pipe:1',
    );
    expect(() => ffmpegAudioArgs({ streamId: 'a', path: '' })).toThrow(/option "path"/);
  });

  it('sources refuse an origin that is not whole non-negative µs', () => {
    expect(() => audioFileSource({ streamId: 'a', path: 'a.wav', origin: -5 })).toThrow(/option "origin"/);
    expect(() => audioFileSource({ streamId: 'a', path: 'a.wav', origin: 0.5 })).toThrow(InvalidOptionError);
    expect(() =>
      videoSource({ streamId: 'v', input: { kind: 'file', path: 'v.avi' }, origin: Number.NaN }),
    ).toThrow(/option "origin"/);
    expect(() => audioFileSource({ streamId: 'a', path: 'a.wav', origin: 0 })).not.toThrow();
  });
});
