import { CompressedImage, Log, RawAudio, RawImage } from '@foxglove/schemas/jsonschema.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type AnySourceEvent,
  InvalidEventError,
  type SourceEvent,
  validateEvent,
} from '../../src/core/index.js';
import {
  decodeEvent,
  decodePrediction,
  encodeEvent,
  encodeLogView,
  encodePrediction,
  microsToNanos,
  nanosToMicros,
  nanosToMicrosFloor,
} from '../../src/record/codec.js';
import { type MessageDecoder, messageDecoder } from '../../src/record/message-decoder.js';
import type { McapChannel, McapSchema } from '../../src/record/message-source.js';
import { protoSchema } from '../../src/record/proto-schemas.js';
import {
  type MessageEncoding,
  SCHEMA_ENCODING,
  SCHEMA_MODALITY,
  SCHEMAS,
  type SchemaName,
  schemaData,
} from '../../src/record/schemas.js';

/** The decoder the reader builds for a channel of this schema and encoding, from the bytes braid stores. */
function decoderFor(name: SchemaName, encoding: MessageEncoding): MessageDecoder {
  const schema: McapSchema = {
    type: 'Schema',
    id: 1,
    name,
    encoding: SCHEMA_ENCODING[encoding],
    data: encoding === 'protobuf' ? protoSchema(name).data : schemaData(name),
  };
  const channel: McapChannel = {
    type: 'Channel',
    id: 1,
    schemaId: 1,
    topic: '/t',
    messageEncoding: encoding,
    metadata: new Map(),
  };
  const decoder = messageDecoder(name, channel, schema, new Map());
  if (typeof decoder === 'string') throw new Error(decoder);
  return decoder;
}

const encodings = ['protobuf', 'json'] as const;

const roundTrip = (event: AnySourceEvent, encoding: MessageEncoding = 'protobuf'): AnySourceEvent => {
  const { schema, data } = encodeEvent(event, encoding);
  expect(SCHEMA_MODALITY[schema]).toBe(event.modality);
  return validateEvent(decodeEvent(schema, event, event.time, event.seq, decoderFor(schema, encoding)(data)));
};

const asJson = (data: Uint8Array) => JSON.parse(Buffer.from(data).toString('utf8'));

describe('record codec', () => {
  it.each(encodings)('round-trips audio samples bit-exactly for any PCM16 content (%s)', (encoding) => {
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
          const back = roundTrip(event, encoding);
          expect(back).toEqual(event);
          expect(back.payload).toHaveProperty('samples.buffer.byteLength', samples.byteLength);
        },
      ),
    );
  });

  it.each(encodings)(
    'round-trips raw gray and rgb frames, jpeg and png bytes, text and labels (%s)',
    (encoding) => {
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
      for (const e of events) expect(roundTrip(e, encoding)).toEqual(e);
    },
  );

  it.each(encodings)(
    'writes text a second time as foxglove.Log, which reads back as the same text (%s)',
    (encoding) => {
      const event: SourceEvent<'text'> = {
        streamId: 'chat',
        modality: 'text',
        time: 1_500_000,
        seq: 3,
        payload: { text: 'hi there' },
      };
      const view = encodeLogView(event, encoding);
      expect(view.schema).toBe('foxglove.Log');
      const m = decoderFor('foxglove.Log', encoding)(view.data);
      expect(m).toMatchObject({ message: 'hi there' });
      if (encoding === 'json') expect(m).toMatchObject({ level: 2, name: 'chat' });
      else
        expect(
          protoSchema('foxglove.Log').type.toObject(protoSchema('foxglove.Log').type.decode(view.data)),
        ).toMatchObject({ level: 2, message: 'hi there', name: 'chat' });
      expect(decodeEvent('foxglove.Log', event, event.time, event.seq, m)).toEqual(event);
    },
  );

  it('writes Foxglove field names and the originating time as the message timestamp', () => {
    const audio = encodeEvent({
      streamId: 'mic',
      modality: 'audio',
      time: 1_700_000_000_123_456,
      seq: 0,
      payload: { sampleRate: 8000, channels: 1, samples: Int16Array.of(1, -1) },
    });
    const json = encodeEvent(
      {
        streamId: 'mic',
        modality: 'audio',
        time: 1_700_000_000_123_456,
        seq: 0,
        payload: { sampleRate: 8000, channels: 1, samples: Int16Array.of(1, -1) },
      },
      'json',
    );
    expect(audio.schema).toBe('foxglove.RawAudio');
    const type = protoSchema('foxglove.RawAudio').type;
    expect(type.toObject(type.decode(audio.data), { longs: Number })).toMatchObject({
      timestamp: { seconds: 1_700_000_000, nanos: 123_456_000 },
      format: 'pcm-s16',
      sample_rate: 8000,
      number_of_channels: 1,
    });
    expect(asJson(json.data)).toEqual({
      timestamp: { sec: 1_700_000_000, nsec: 123_456_000 },
      data: Buffer.from(Int16Array.of(1, -1).buffer).toString('base64'),
      format: 'pcm-s16',
      sample_rate: 8000,
      number_of_channels: 1,
    });
    const frame = encodeEvent(
      {
        streamId: 'cam',
        modality: 'video',
        time: 0,
        seq: 0,
        payload: { format: 'rgb', width: 2, height: 1, data: new Uint8Array(6) },
      },
      'json',
    );
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
    expect(parsed('foxglove.Log')).toEqual(Log);
    for (const name of ['braid.Text', 'braid.Labels', 'braid.Prediction'] as const) {
      expect(parsed(name)).toMatchObject({ title: name, type: 'object' });
      expect(parsed(name).required).toContain('timestamp');
    }
  });

  it('stores FileDescriptorSets that protobufjs reads back to the same fields Foxglove defines', () => {
    const fields = (name: SchemaName) =>
      protoSchema(name)
        .type.fieldsArray.map((f) => f.name)
        .sort();
    expect(fields('foxglove.RawAudio')).toEqual(Object.keys(RawAudio.properties).sort());
    expect(fields('foxglove.RawImage')).toEqual(Object.keys(RawImage.properties).sort());
    expect(fields('foxglove.CompressedImage')).toEqual(Object.keys(CompressedImage.properties).sort());
    expect(fields('foxglove.Log')).toEqual(Object.keys(Log.properties).sort());
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
        decoderFor(schema, 'json')(typeof v === 'string' ? Buffer.from(v) : bytes(v)),
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
    expect(() => decode('foxglove.RawImage', 'video', { ...image, encoding: 'yuv422' })).toThrow(
      /encoding "yuv422" is not one braid reads/,
    );
    expect(() => decode('foxglove.RawImage', 'video', { ...image, encoding: 'mono8', step: 4 })).toThrow(
      /data has 2 bytes, 1 rows of step 4 need 4/,
    );
    expect(() => decode('foxglove.RawImage', 'video', { ...image, encoding: 'rgb8', step: 5 })).toThrow(
      /step 5 is less than width 2 × 3/,
    );
    expect(() =>
      decode('foxglove.CompressedImage', 'video', { timestamp: ts, frame_id: 's', data: '', format: 'webp' }),
    ).toThrow(/jpeg or png, got "webp"/);
    // Shape is fine, payload rules are not: validateEvent catches it with the core's field names.
    const wrongSize = decode('foxglove.RawImage', 'video', {
      ...image,
      width: 0,
      encoding: 'mono8',
    });
    expect(() => validateEvent(wrongSize)).toThrow(InvalidEventError);
  });

  it("reads other tools' raw images: row padding stripped, BGR, RGBA and BGRA turned into RGB", () => {
    const ts = { seconds: 0, nanos: 0 };
    const read = (encoding: string, step: number, data: number[]) =>
      decodeEvent(
        'foxglove.RawImage',
        { streamId: 's', modality: 'video' },
        0,
        0,
        decoderFor(
          'foxglove.RawImage',
          'protobuf',
        )(
          protoSchema('foxglove.RawImage')
            .type.encode({
              timestamp: ts,
              frame_id: 's',
              width: 2,
              height: 2,
              encoding,
              step,
              data: Uint8Array.from(data),
            })
            .finish(),
        ),
      ).payload;
    expect(read('mono8', 3, [1, 2, 0, 3, 4, 0])).toEqual({
      format: 'gray',
      width: 2,
      height: 2,
      data: Uint8Array.of(1, 2, 3, 4),
    });
    const rgb = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12);
    expect(read('bgr8', 6, [3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10])).toMatchObject({
      format: 'rgb',
      data: rgb,
    });
    expect(read('rgba8', 8, [1, 2, 3, 0, 4, 5, 6, 0, 7, 8, 9, 0, 10, 11, 12, 0])).toMatchObject({
      data: rgb,
    });
    expect(read('bgra8', 8, [3, 2, 1, 9, 6, 5, 4, 9, 9, 8, 7, 9, 12, 11, 10, 9])).toMatchObject({
      data: rgb,
    });
  });

  it.each(encodings)(
    'round-trips predictions exactly, with their model, and refuses non-finite scores (%s)',
    (encoding) => {
      const p = {
        streamId: 's1',
        windowIndex: 17_000_000_000,
        windowStart: 1_700_000_000_000_000,
        windowEnd: 1_700_000_000_100_000,
        scores: { speech: 0.1 + 0.2, music: 1e-300, other: 0 },
        present: { audio: true, video: false, text: false, label: true },
      };
      const decode = decoderFor('braid.Prediction', encoding);
      expect(decodePrediction(decode(encodePrediction(p, undefined, encoding).data))).toEqual({
        prediction: p,
      });
      expect(decodePrediction(decode(encodePrediction(p, 'demo@abc', encoding).data))).toEqual({
        prediction: p,
        model: 'demo@abc',
      });
      const nan = { ...p, scores: { speech: Number.NaN } };
      expect(() => encodePrediction(nan, undefined, encoding)).toThrow(InvalidEventError);
      expect(() => encodePrediction(nan, undefined, encoding)).toThrow(/scores.speech/);
    },
  );

  it('converts µs to MCAP ns and back, refusing sub-µs log times', () => {
    expect(microsToNanos(7_258_118_400_000_000)).toBe(7_258_118_400_000_000_000n);
    expect(nanosToMicros(microsToNanos(123_456_789))).toBe(123_456_789);
    expect(() => nanosToMicros(1_500n)).toThrow(/not a whole number of µs/);
    expect(nanosToMicrosFloor(1_999n)).toBe(1);
  });

  it('builds every validator (the Foxglove ones from their JSON Schema text)', () => {
    for (const def of Object.values(SCHEMAS)) expect(def.validator.safeParse({}).success).toBe(false);
  });
});
