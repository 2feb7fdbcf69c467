import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeFrame, FRAME_FLAG_BOUND, FRAME_HEADER_BYTES, parseFrame } from '../../src/core/frame.js';
import { MAX_TIME_MICROS } from '../../src/core/time.js';

describe('binary frame', () => {
  it('round-trips modality, time, seq, payload and the bound flag', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('audio' as const, 'video' as const),
        fc.integer({ min: 0, max: MAX_TIME_MICROS }),
        fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        fc.uint8Array({ maxLength: 64 }),
        fc.boolean(),
        (modality, time, seq, payload, bound) => {
          const bytes = encodeFrame({ modality, time, seq, payload, bound });
          expect(bytes.byteLength).toBe(FRAME_HEADER_BYTES + payload.byteLength);
          expect(bytes[2]).toBe(bound ? FRAME_FLAG_BOUND : 0);
          const parsed = parseFrame(bytes);
          expect(parsed).toEqual({ modality, time, seq, payload, ...(bound && { bound: true }) });
        },
      ),
    );
  });

  it('refuses a flag it does not know, naming the byte, and ignores the reserved byte', () => {
    const bytes = encodeFrame({
      modality: 'audio',
      time: 5,
      seq: 1,
      payload: new Uint8Array(2),
      bound: true,
    });
    bytes[3] = 0xff;
    expect(parseFrame(bytes)).toMatchObject({ time: 5, bound: true });
    for (const flags of [2, 4, 0x80, 0x83]) {
      bytes[2] = flags;
      expect(parseFrame(bytes)).toEqual({
        reason: 'bad_flags',
        message: `binary frame flags 0x${flags.toString(16)}: only 0x1 (bound) is known`,
      });
    }
  });
});
