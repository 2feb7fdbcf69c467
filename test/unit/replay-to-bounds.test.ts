import { describe, expect, it } from 'vitest';
import { carriesBound } from '../../src/cli/replay-to.js';
import type { AnySourceEvent, StreamInput } from '../../src/core/events.js';

/** Which frames of a recording played into a server may also be their stream's progress bound (frame flags). */

// 20 ms of 16 kHz mono audio: the frame at `time` ends at time + 20,000 µs.
const audio = (streamId: string, time: number, samples = 320): AnySourceEvent => ({
  streamId,
  modality: 'audio',
  time,
  seq: 0,
  payload: { sampleRate: 16_000, channels: 1, samples: new Int16Array(samples) },
});
const video = (streamId: string, time: number): AnySourceEvent => ({
  streamId,
  modality: 'video',
  time,
  seq: 0,
  payload: { format: 'gray', width: 2, height: 2, data: new Uint8Array(4) },
});
const text = (streamId: string, time: number): AnySourceEvent => ({
  streamId,
  modality: 'text',
  time,
  seq: 0,
  payload: { text: 'hi' },
});

describe('carriesBound', () => {
  it('lets a video frame be its own bound (its time), whatever comes after', () => {
    expect(carriesBound(video('a', 100_000), [])).toBe(true);
    expect(carriesBound(video('a', 100_000), [audio('a', 100_000)])).toBe(true);
  });

  it('lets an audio frame be the bound at its end once the inputs ahead reach it with nothing of its stream before', () => {
    expect(carriesBound(audio('a', 0), [audio('a', 20_000)])).toBe(true);
    expect(carriesBound(audio('a', 0), [audio('b', 5_000), video('b', 10_000), audio('b', 20_000)])).toBe(
      true,
    );
    // A stereo frame of 640 samples is 320 frames: 20 ms.
    const stereo: AnySourceEvent = {
      streamId: 'a',
      modality: 'audio',
      time: 0,
      seq: 0,
      payload: { sampleRate: 16_000, channels: 2, samples: new Int16Array(640) },
    };
    expect(carriesBound(stereo, [audio('a', 20_000)])).toBe(true);
  });

  it('refuses the bound where an input of the stream falls inside the frame, or the inputs ahead stop short', () => {
    // The video frame of the audio frame's span comes after it in time order: a bound at the audio's end would make it late.
    expect(carriesBound(audio('a', 80_000), [video('a', 90_000), audio('a', 100_000)])).toBe(false);
    expect(carriesBound(audio('a', 0), [text('a', 19_999)])).toBe(false);
    // Nothing read ahead (a real-time replay): unknown, so no bound.
    expect(carriesBound(audio('a', 0), [])).toBe(false);
    expect(carriesBound(audio('a', 0), [audio('b', 5_000)])).toBe(false);
    expect(carriesBound(text('a', 0), [audio('a', 20_000)])).toBe(false);
  });

  it('lets the last frame before its stream closes be a bound, and not one before another control of it', () => {
    const close: StreamInput = { control: 'close', streamId: 'a' };
    const open: StreamInput = { control: 'open', streamId: 'b' };
    expect(carriesBound(audio('a', 0), [open, close])).toBe(true);
    expect(carriesBound(audio('a', 0), [{ control: 'restart', streamId: 'a' }, audio('a', 20_000)])).toBe(
      false,
    );
  });
});
