import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidOptionError } from '../../src/core/errors.js';
import { ffmpegAudioArgs } from '../../src/sources/audio-file.js';
import { LineSplitter } from '../../src/sources/child-process.js';
import { frameSamplesFor, PcmFramer } from '../../src/sources/pcm-framer.js';
import { FixedSizeChunker, ffmpegVideoArgs } from '../../src/sources/video.js';

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
});
