import { describe, expect, it } from 'vitest';
import { InvalidEventError, validateEvent } from '../../src/core/index.js';
import { audioFrameTime, parseDuration } from '../../src/core/time.js';

const ok = { streamId: 's1', modality: 'text', time: 1_000_000, seq: 0, payload: { text: 'hi' } };

function fieldOf(value: unknown): { field: string; reason: string } {
  try {
    validateEvent(value);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidEventError);
    const e = error as InvalidEventError;
    expect(e.code).toBe('BRAID_ERR_INVALID_EVENT');
    return { field: e.field, reason: e.reason };
  }
  throw new Error('expected validateEvent to throw');
}

describe('validateEvent', () => {
  it('accepts a well-formed event of each modality', () => {
    expect(validateEvent(ok)).toBe(ok);
    validateEvent({
      ...ok,
      modality: 'audio',
      payload: { sampleRate: 16000, channels: 1, samples: new Int16Array(160) },
    });
    validateEvent({
      ...ok,
      modality: 'video',
      payload: { format: 'gray', width: 4, height: 2, data: new Uint8Array(8) },
    });
    validateEvent({ ...ok, modality: 'video', payload: { format: 'jpeg', data: new Uint8Array(10) } });
    validateEvent({ ...ok, modality: 'label', payload: { labels: { speech: 1 } } });
  });

  it.each([
    [{ ...ok, time: Number.NaN }, 'time', 'non_finite_time'],
    [{ ...ok, time: Number.POSITIVE_INFINITY }, 'time', 'non_finite_time'],
    [{ ...ok, time: -5 }, 'time', 'negative_time'],
    [{ ...ok, time: 1e20 }, 'time', 'absurd_time'],
    [{ ...ok, time: 1.5 }, 'time', 'fractional_time'],
    [{ ...ok, time: '12' }, 'time', 'non_finite_time'],
    [{ ...ok, streamId: '' }, 'streamId', 'missing_stream_id'],
    [{ ...ok, streamId: undefined }, 'streamId', 'missing_stream_id'],
    [{ ...ok, streamId: 'x'.repeat(500) }, 'streamId', 'stream_id_too_long'],
    [{ ...ok, modality: 'smell' }, 'modality', 'unknown_modality'],
    [{ ...ok, seq: -1 }, 'seq', 'bad_seq'],
    [{ ...ok, payload: null }, 'payload', 'missing_payload'],
    [{ ...ok, payload: { text: 42 } }, 'payload.text', 'bad_text'],
    [{ ...ok, payload: { text: 'x'.repeat(5_000_000) } }, 'payload', 'oversized_payload'],
    [
      { ...ok, modality: 'audio', payload: { sampleRate: 7, channels: 1, samples: new Int16Array(2) } },
      'payload.sampleRate',
      'bad_sample_rate',
    ],
    [
      { ...ok, modality: 'video', payload: { format: 'gray', width: 4, height: 2, data: new Uint8Array(7) } },
      'payload.data',
      'bad_video_size',
    ],
    [
      { ...ok, modality: 'video', payload: { format: 'bmp', data: new Uint8Array(7) } },
      'payload.format',
      'bad_video_format',
    ],
    [{ ...ok, modality: 'label', payload: { labels: { speech: 'yes' } } }, 'payload.labels', 'bad_label'],
    [42, 'event', 'not_object'],
  ])('rejects %# naming the field', (event, field, reason) => {
    expect(fieldOf(event)).toEqual({ field, reason });
  });
});

describe('time', () => {
  it('stamps audio frames from sample counts', () => {
    expect(audioFrameTime(5_000_000, 0, 16000)).toBe(5_000_000);
    expect(audioFrameTime(5_000_000, 160, 16000)).toBe(5_010_000);
    expect(audioFrameTime(0, 16000 * 3600, 16000)).toBe(3600_000_000);
    // 44.1 kHz: floor keeps whole µs and never drifts from the sample count.
    expect(audioFrameTime(0, 441, 44100)).toBe(10_000);
    expect(audioFrameTime(0, 1, 44100)).toBe(22);
  });

  it('parses durations', () => {
    expect(parseDuration('30s')).toBe(30_000_000);
    expect(parseDuration('250ms')).toBe(250_000);
    expect(parseDuration('1.5m')).toBe(90_000_000);
    expect(parseDuration('2')).toBe(2_000_000);
    expect(() => parseDuration('soon')).toThrow(/not a duration: "soon"/);
    // Whole µs only: a finer duration is refused, not rounded; binary fractions of whole µs still parse.
    expect(() => parseDuration('1.5us')).toThrow(/not a whole number of µs: "1.5us"/);
    expect(() => parseDuration('0.0000005s')).toThrow(/not a whole number of µs/);
    expect(parseDuration('1.1s')).toBe(1_100_000);
    expect(parseDuration('0.000001s')).toBe(1);
    expect(parseDuration('2.000003s')).toBe(2_000_003);
    expect(() => parseDuration('1e400')).toThrow(/not a duration/);
    expect(() => parseDuration('99999999999h')).toThrow(/duration too long/);
  });
});
