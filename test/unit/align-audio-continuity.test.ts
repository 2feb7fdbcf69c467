import { describe, expect, it } from 'vitest';
import { collectEvents } from '../../src/align/aggregator.js';
import { WindowAligner } from '../../src/align/window-aligner.js';
import type { AnySourceEvent, StreamInput } from '../../src/core/events.js';
import { audioFrameTime } from '../../src/core/time.js';

/**
 * An audio frame's time is where its samples start; the samples before it say where it should start. Where the two
 * disagree by more than a sample period the aligner counts a gap or an overlap (the frames are still taken). Frames
 * are compared as they are released, in time order, so the counts follow their windows' closing.
 */

const close = (streamId = 's') => ({ control: 'close', streamId }) as StreamInput;

function aligner(): { aligner: WindowAligner<readonly AnySourceEvent[]>; windows: number[] } {
  const windows: number[] = [];
  const a = new WindowAligner<readonly AnySourceEvent[]>(
    { size: 100_000, hop: 100_000, outOfOrderness: 20_000, aggregator: collectEvents },
    { window: (w) => windows.push(w.counts.audio), late: () => {}, rejected: () => {} },
  );
  return { aligner: a, windows };
}

function audio(
  time: number,
  seq: number,
  samples: number,
  sampleRate = 44_100,
  streamId = 's',
): AnySourceEvent {
  return {
    streamId,
    modality: 'audio',
    time,
    seq,
    payload: { sampleRate, channels: 1, samples: new Int16Array(samples) },
  };
}

describe('audio continuity', () => {
  it('counts nothing for frames stamped from their sample count, at a rate that does not divide a second', () => {
    const { aligner: a } = aligner();
    // 44.1 kHz, 441-sample and uneven frames: stamps are floored to whole µs, never a sample period off.
    let samples = 0;
    for (let seq = 0; seq < 500; seq++) {
      const length = seq % 3 === 0 ? 441 : 127 + seq;
      a.push(audio(audioFrameTime(1_000_003, samples, 44_100), seq, length));
      samples += length;
    }
    a.push(close());
    expect(a.stats.eventsIn).toBe(500);
    expect(a.stats).toMatchObject({ audioGaps: 0, audioOverlaps: 0 });
  });

  it('counts a frame stamped after the previous frame ends as a gap, one stamped before as an overlap, and keeps both', () => {
    const { aligner: a, windows } = aligner();
    // 16 kHz, 10 ms frames: 160 samples each.
    a.push(audio(0, 0, 160, 16_000));
    a.push(audio(10_000, 1, 160, 16_000));
    a.push(audio(30_000, 2, 160, 16_000)); // 10 ms missing: a gap
    a.push(audio(35_000, 3, 160, 16_000)); // starts 5 ms before the previous frame ends: an overlap
    a.push(audio(45_062, 4, 160, 16_000)); // 62 µs late: within a sample period (62.5 µs), nothing
    a.push(audio(55_126, 5, 160, 16_000)); // 64 µs late: a gap
    // Nothing released yet: counted as the window that holds them closes.
    expect(a.stats).toMatchObject({ eventsIn: 6, audioGaps: 0, audioOverlaps: 0 });
    a.push(close());
    expect(a.stats).toMatchObject({ eventsIn: 6, audioGaps: 2, audioOverlaps: 1 });
    expect(windows).toEqual([6]);
  });

  it('compares a frame only with the frame of the seq before it: one lost is no contradiction', () => {
    const { aligner: a } = aligner();
    a.push(audio(0, 0, 160, 16_000));
    a.push(audio(20_000, 2, 160, 16_000));
    a.push(audio(10_000, 1, 160, 16_000)); // out of order: taken, and compared in time order all the same
    a.push(audio(30_000, 3, 160, 16_000));
    a.push(audio(60_000, 5, 160, 16_000)); // seq 4 lost: its 10 ms explain half the gap, so not compared
    a.push(audio(75_000, 6, 160, 16_000)); // after seq 5 with 5 ms missing: a gap
    a.push(close());
    expect(a.stats).toMatchObject({ eventsIn: 6, audioGaps: 1, audioOverlaps: 0 });
  });

  it('counts the same whatever order the frames arrived in (within the out-of-orderness)', () => {
    // 16 kHz, 10 ms frames with a gap after seq 3, an overlap at seq 7, and seq 10 lost.
    const frames = Array.from({ length: 41 }, (_, seq) => {
      const time = seq * 10_000 + (seq > 3 ? 2_000 : 0) - (seq > 6 ? 4_000 : 0);
      return audio(time, seq, 160, 16_000);
    }).filter((f) => f.seq !== 10);
    const counts = (order: readonly AnySourceEvent[]) => {
      const { aligner: a } = aligner();
      for (const f of order) a.push(f);
      a.push(close());
      expect(a.stats.eventsIn).toBe(frames.length);
      return { gaps: a.stats.audioGaps, overlaps: a.stats.audioOverlaps };
    };
    const inOrder = counts(frames);
    expect(inOrder).toEqual({ gaps: 1, overlaps: 1 });
    // Each pair swapped, the later frame first (10 ms apart: within the 20 ms out-of-orderness).
    const swapped = frames.flatMap((f, i) => (i % 2 === 0 ? [] : [f, frames[i - 1]!]));
    expect(swapped).toHaveLength(frames.length);
    expect(counts(swapped)).toEqual(inOrder);
  });

  it('starts again after an epoch reset or a restart, and keeps streams apart', () => {
    const { aligner: a } = aligner();
    a.push(audio(0, 0, 160, 16_000));
    a.push(audio(0, 0, 160, 16_000, 'other'));
    a.push({ control: 'reset', streamId: 's', modality: 'audio' } as StreamInput);
    a.push(audio(5_000, 1, 160, 16_000)); // a new epoch: not compared with the frame at 0
    a.push({ control: 'restart', streamId: 'other' } as StreamInput);
    a.push(audio(500_000, 1, 160, 16_000, 'other'));
    a.push(audio(510_000, 2, 160, 16_000, 'other'));
    a.push(audio(520_001, 3, 160, 16_000, 'other')); // 1 µs after seq 2 ends: within a sample period
    a.push(audio(520_000, 2, 160, 16_000)); // after seq 1 of the new epoch, 505 ms missing: a gap
    a.push(close());
    a.push(close('other'));
    expect(a.stats).toMatchObject({ audioGaps: 1, audioOverlaps: 0 });
  });
});
