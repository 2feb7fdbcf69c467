import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MODALITIES, type StreamInput } from '../../src/core/events.js';
import { decodeInputs, encodeInputs } from '../../src/shards/input-batch.js';

const streamId = fc.string({ minLength: 1, maxLength: 12 });
const time = fc.integer({ min: 0, max: 2 ** 52 });
const seq = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const bytes = fc.uint8Array({ maxLength: 97 });

const audio = fc
  .record({
    streamId,
    time,
    seq,
    // Beyond what the protocol takes too: fields too wide for the header go as objects.
    sampleRate: fc.oneof(fc.integer({ min: 1000, max: 384_000 }), fc.integer({ min: 0, max: 2 ** 40 })),
    channels: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0, max: 1000 })),
    samples: fc.array(fc.integer({ min: -32768, max: 32767 }), { maxLength: 41 }),
    // An odd offset into a larger buffer: the encoder must take the view, not its buffer.
    offset: fc.nat({ max: 3 }),
  })
  .map(({ samples, offset, sampleRate, channels, ...rest }): StreamInput => {
    const backing = new Int16Array(samples.length + offset + 2).fill(-1);
    backing.set(samples, offset);
    const view = backing.subarray(offset, offset + samples.length);
    return { ...rest, modality: 'audio', payload: { sampleRate, channels, samples: view } };
  });
const rawVideo = fc
  .record({
    streamId,
    time,
    seq,
    format: fc.constantFrom('gray' as const, 'rgb' as const),
    width: fc.oneof(fc.integer({ min: 1, max: 4096 }), fc.integer({ min: 0, max: 100_000 })),
    height: fc.oneof(fc.integer({ min: 1, max: 4096 }), fc.integer({ min: 0, max: 100_000 })),
    data: bytes,
  })
  .map(
    ({ format, width, height, data, ...rest }): StreamInput => ({
      ...rest,
      modality: 'video',
      payload: { format, width, height, data },
    }),
  );
const compressedVideo = fc
  .record({ streamId, time, seq, format: fc.constantFrom('jpeg' as const, 'png' as const), data: bytes })
  .map(
    ({ format, data, ...rest }): StreamInput => ({ ...rest, modality: 'video', payload: { format, data } }),
  );
const text = fc
  .record({ streamId, time, seq, text: fc.string() })
  .map(({ text, ...rest }): StreamInput => ({ ...rest, modality: 'text', payload: { text } }));
const label = fc
  .record({ streamId, time, seq, labels: fc.dictionary(fc.string(), fc.double({ noNaN: true })) })
  .map(({ labels, ...rest }): StreamInput => ({ ...rest, modality: 'label', payload: { labels } }));
const control = fc.oneof(
  fc.record({ control: fc.constant('progress' as const), streamId, time }),
  fc.record({ control: fc.constant('open' as const), streamId, modalities: fc.subarray([...MODALITIES]) }),
  fc.record({ control: fc.constantFrom('close' as const, 'restart' as const, 'suspend' as const), streamId }),
  fc.record({
    control: fc.constant('gap' as const),
    streamId,
    modality: fc.constantFrom(...MODALITIES),
    from: time,
    to: time,
  }),
);
const input = fc.oneof(audio, rawVideo, compressedVideo, text, label, control);

/** What a structured clone would have delivered: the same values, typed arrays compared by content. */
function plain(inputs: readonly StreamInput[]): unknown[] {
  return inputs.map((i) => {
    if ('control' in i) return { ...i };
    if (i.modality === 'audio')
      return { ...i, payload: { ...i.payload, samples: Array.from(i.payload.samples) } };
    if (i.modality === 'video') return { ...i, payload: { ...i.payload, data: Array.from(i.payload.data) } };
    return i;
  });
}

describe('a shard’s input batch', () => {
  it('gives back every input, in order, with the same values and payload types', () => {
    fc.assert(
      fc.property(fc.array(input, { maxLength: 30 }), (inputs) => {
        const batch = encodeInputs(inputs);
        // Sent as the pipeline sends it: the buffer transferred, the rest cloned.
        const received = structuredClone(batch, { transfer: [batch.bytes] });
        const decoded = decodeInputs(received);
        expect(plain(decoded)).toEqual(plain(inputs));
        decoded.forEach((d, k) => {
          const original = inputs[k]!;
          if ('control' in d || 'control' in original) return;
          if (d.modality === 'audio') expect(d.payload.samples).toBeInstanceOf(Int16Array);
          if (d.modality === 'video') expect(d.payload.data).toBeInstanceOf(Uint8Array);
          expect(Object.keys(d).sort()).toEqual(Object.keys(original).sort());
          expect(Object.keys(d.payload).sort()).toEqual(Object.keys(original.payload).sort());
        });
      }),
      { numRuns: 300 },
    );
  });

  it('leaves the sender’s payloads as they were and shares no memory with them', () => {
    const samples = new Int16Array([1, -2, 3, -4]);
    const frame = new Uint8Array([9, 8, 7]);
    const inputs: StreamInput[] = [
      {
        streamId: 'a',
        modality: 'audio',
        time: 10,
        seq: 0,
        payload: { sampleRate: 16_000, channels: 1, samples },
      },
      {
        streamId: 'a',
        modality: 'video',
        time: 20,
        seq: 0,
        payload: { format: 'gray', width: 3, height: 1, data: frame },
      },
    ];
    const batch = encodeInputs(inputs);
    structuredClone(batch, { transfer: [batch.bytes] });
    expect(Array.from(samples)).toEqual([1, -2, 3, -4]);
    expect(Array.from(frame)).toEqual([9, 8, 7]);
    expect(samples.buffer.byteLength).toBeGreaterThan(0);
  });
});
