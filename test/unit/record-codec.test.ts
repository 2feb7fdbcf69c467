import { CompressedImage, RawAudio, RawImage } from '@foxglove/schemas/jsonschema.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type AnySourceEvent, InvalidEventError, validateEvent } from '../../src/core/index.js';
import {
  decodeEvent,
  decodePrediction,
  encodeEvent,
  encodePrediction,
  microsToNanos,
  nanosToMicros,
  SCHEMA_MODALITY,
} from '../../src/record/codec.js';
import { SCHEMAS, type SchemaName, schemaData } from '../../src/record/schemas.js';

const roundTrip = (event: AnySourceEvent): AnySourceEvent => {
  const { schema, data } = encodeEvent(event);
  expect(SCHEMA_MODALITY[schema]).toBe(event.modality);
  return validateEvent(decodeEvent(schema, event, event.time, event.seq, data));
};

const asJson = (data: Uint8Array) => JSON.parse(Buffer.from(data).toString('utf8'));

describe('record codec', () => {
  it('round-trips audio samples bit-exactly for any PCM16 content', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: -32768, max: 32767 }), { maxLength: 400 }),
        fc.constantFrom(1, 2),
        fc.integer({ min: 0, max: 7_258_118_400_000_000 }),
        fc.nat({ max: 0xffff_ffff }),
        (values, channels, time, seq) => {
          const samples = Int16Array.from(values.slice(0, values.length - (values.length % channels)));
          const event: AnySourceEvent = {
            streamId: 'mic',
            modality: 'audio',
            time,
            seq,
            payload: { sampleRate: 16000, channels, samples },
          };
          const back = roundTrip(event);
          expect(back).toEqual(event);
          expect(back.payload).toHaveProperty('samples.buffer.byteLength', samples.byteLength);
        },
      ),
    );
  });

  it('round-trips raw gray and rgb frames, jpeg and png bytes, text and labels', () => {
    const gray = Uint8Array.from({ length: 12 }, (_, i) => i * 20);
    const rgb = Uint8Array.from({ length: 18 }, (_, i) => 255 - i);
    const events: AnySourceEvent[] = [
      {
        streamId: 'cam',
        modality: 'video',
        time: 5,
        seq: 1,
        payload: { format: 'gray', width: 4, height: 3, data: gray },
      },
      {
        streamId: 'cam',
        modality: 'video',
        time: 6,
        seq: 2,
        payload: { format: 'rgb', width: 3, height: 2, data: rgb },
      },
      {
        streamId: 'cam',
        modality: 'video',
        time: 7,
        seq: 3,
        payload: { format: 'jpeg', data: Uint8Array.of(0xff, 0xd8, 0xff, 0xd9) },
      },
      {
        streamId: 'cam',
        modality: 'video',
        time: 8,
        seq: 4,
        payload: { format: 'png', data: Uint8Array.of(0x89, 0x50, 0x4e) },
      },
      { streamId: 'chat', modality: 'text', time: 9, seq: 0, payload: { text: 'héllo "wörld" \u0000 🎧' } },
      {
        streamId: 'chat',
        modality: 'label',
        time: 10,
        seq: 0,
        payload: { labels: { speech: 1, music: 0, weird: 0.1 + 0.2 } },
      },
    ];
    for (const e of events) expect(roundTrip(e)).toEqual(e);
  });

  it('writes Foxglove field names and the originating time as the message timestamp', () => {
    const audio = encodeEvent({
      streamId: 'mic',
      modality: 'audio',
      time: 1_700_000_000_123_456,
      seq: 0,
      payload: { sampleRate: 8000, channels: 1, samples: Int16Array.of(1, -1) },
    });
    expect(audio.schema).toBe('foxglove.RawAudio');
    expect(asJson(audio.data)).toEqual({
      timestamp: { sec: 1_700_000_000, nsec: 123_456_000 },
      data: Buffer.from(Int16Array.of(1, -1).buffer).toString('base64'),
      format: 'pcm-s16',
      sample_rate: 8000,
      number_of_channels: 1,
    });
    const frame = encodeEvent({
      streamId: 'cam',
      modality: 'video',
      time: 0,
      seq: 0,
      payload: { format: 'rgb', width: 2, height: 1, data: new Uint8Array(6) },
    });
    expect(asJson(frame.data)).toMatchObject({
      encoding: 'rgb8',
      step: 6,
      width: 2,
      height: 1,
      frame_id: 'cam',
    });
  });

  it('declares the exact JSON Schemas of @foxglove/schemas and titled schemas of its own', () => {
    const parsed = (name: SchemaName) => JSON.parse(new TextDecoder().decode(schemaData(name)));
    expect(parsed('foxglove.RawAudio')).toEqual(RawAudio);
    expect(parsed('foxglove.RawImage')).toEqual(RawImage);
    expect(parsed('foxglove.CompressedImage')).toEqual(CompressedImage);
    for (const name of ['braid.Text', 'braid.Labels', 'braid.Prediction'] as const) {
      expect(parsed(name)).toMatchObject({ title: name, type: 'object' });
      expect(parsed(name).required).toContain('timestamp');
    }
  });

  it('rejects messages that do not match their schema, with the field named', () => {
    const bytes = (v: unknown) => Buffer.from(JSON.stringify(v));
    const ts = { sec: 0, nsec: 0 };
    const decode = (schema: SchemaName, modality: AnySourceEvent['modality'], v: unknown) =>
      decodeEvent(
        schema,
        { streamId: 's', modality },
        0,
        0,
        typeof v === 'string' ? Buffer.from(v) : bytes(v),
      );
    expect(() => decode('braid.Text', 'text', '{not json')).toThrow(/braid.Text message is not JSON/);
    expect(() => decode('braid.Text', 'text', { timestamp: ts, text: 5 })).toThrow(/text/);
    expect(() =>
      decode('foxglove.RawAudio', 'audio', {
        timestamp: ts,
        data: 'AAAA',
        format: 'pcm-s16',
        sample_rate: 16000,
        number_of_channels: 1,
      }),
    ).toThrow(/odd byte count/);
    expect(() =>
      decode('foxglove.RawAudio', 'audio', {
        timestamp: ts,
        data: '!!!!',
        format: 'pcm-s16',
        sample_rate: 16000,
        number_of_channels: 1,
      }),
    ).toThrow(/not valid base64/);
    expect(() =>
      decode('foxglove.RawAudio', 'audio', {
        timestamp: ts,
        data: '',
        format: 'opus',
        sample_rate: 1,
        number_of_channels: 1,
      }),
    ).toThrow(/pcm-s16, got "opus"/);
    const image = { timestamp: ts, frame_id: 's', width: 2, height: 1, step: 2, data: 'AAA=' };
    expect(() => decode('foxglove.RawImage', 'video', { ...image, encoding: 'bgr8' })).toThrow(
      /mono8 or rgb8, got "bgr8"/,
    );
    expect(() => decode('foxglove.RawImage', 'video', { ...image, encoding: 'mono8', step: 4 })).toThrow(
      /row padding/,
    );
    expect(() =>
      decode('foxglove.CompressedImage', 'video', { timestamp: ts, frame_id: 's', data: '', format: 'webp' }),
    ).toThrow(/jpeg or png, got "webp"/);
    // Shape is fine, payload rules are not: validateEvent catches it with the core's field names.
    const wrongSize = decode('foxglove.RawImage', 'video', {
      ...image,
      encoding: 'mono8',
      width: 3,
      step: 3,
    });
    expect(() => validateEvent(wrongSize)).toThrow(InvalidEventError);
  });

  it('round-trips predictions exactly and refuses scores JSON cannot carry', () => {
    const p = {
      streamId: 's1',
      windowIndex: 17_000_000_000,
      windowStart: 1_700_000_000_000_000,
      windowEnd: 1_700_000_000_100_000,
      scores: { speech: 0.1 + 0.2, music: 1e-300, other: 0 },
      present: { audio: true, video: false, text: false, label: true },
    };
    expect(decodePrediction(encodePrediction(p).data)).toEqual(p);
    const nan = { ...p, scores: { speech: Number.NaN } };
    expect(() => encodePrediction(nan)).toThrow(InvalidEventError);
    expect(() => encodePrediction(nan)).toThrow(/scores.speech/);
  });

  it('converts µs to MCAP ns and back, refusing sub-µs log times', () => {
    expect(microsToNanos(7_258_118_400_000_000)).toBe(7_258_118_400_000_000_000n);
    expect(nanosToMicros(microsToNanos(123_456_789))).toBe(123_456_789);
    expect(() => nanosToMicros(1_500n)).toThrow(/not a whole number of µs/);
  });

  it('builds every validator (the Foxglove ones from their JSON Schema text)', () => {
    for (const def of Object.values(SCHEMAS)) expect(def.validator.safeParse({}).success).toBe(false);
  });
});
