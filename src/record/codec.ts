import { InvalidEventError } from '../core/errors.js';
import type { AnySourceEvent, AudioPayload, Modality, RawPixelFormat, VideoPayload } from '../core/events.js';
import { MICROS_PER_SECOND, type Micros } from '../core/time.js';
import type { Prediction } from '../core/window.js';
import { type FoxgloveTime, type MessageOf, SCHEMAS, type SchemaName } from './schemas.js';

/** One event or prediction as the JSON bytes of an MCAP message, with the schema they follow. */
export interface EncodedMessage {
  readonly schema: SchemaName;
  readonly data: Uint8Array;
}

export const microsToNanos = (t: Micros): bigint => BigInt(t) * 1000n;

/** MCAP log time back to braid µs; braid writes whole µs, so a remainder means a foreign or damaged file. */
export function nanosToMicros(ns: bigint): Micros {
  if (ns % 1000n !== 0n) throw new TypeError(`log time ${ns} ns is not a whole number of µs`);
  return Number(ns / 1000n);
}

const foxgloveTime = (t: Micros): FoxgloveTime => ({
  sec: Math.floor(t / MICROS_PER_SECOND),
  nsec: (t % MICROS_PER_SECOND) * 1000,
});

// Int16Array samples are written in memory order; every platform Node runs braid on is little-endian, which is
// what foxglove.RawAudio's pcm-s16 requires.
const toBase64 = (bytes: ArrayBufferView): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');

const json = (schema: SchemaName, message: object): EncodedMessage => ({
  schema,
  data: Buffer.from(JSON.stringify(message)),
});

const RAW_ENCODING = { gray: 'mono8', rgb: 'rgb8' } as const;
const RAW_BYTES_PER_PIXEL = { gray: 1, rgb: 3 } as const;

type RawVideo = Extract<VideoPayload, { format: RawPixelFormat }>;
// TS does not narrow VideoPayload on `format` (one member's discriminant is itself a union), hence the guard.
const isRaw = (p: VideoPayload): p is RawVideo => p.format === 'gray' || p.format === 'rgb';

function encodeVideo(streamId: string, time: Micros, p: VideoPayload): EncodedMessage {
  const timestamp = foxgloveTime(time);
  if (!isRaw(p))
    return json('foxglove.CompressedImage', {
      timestamp,
      frame_id: streamId,
      data: toBase64(p.data),
      format: p.format,
    } satisfies MessageOf<'foxglove.CompressedImage'>);
  return json('foxglove.RawImage', {
    timestamp,
    frame_id: streamId,
    width: p.width,
    height: p.height,
    encoding: RAW_ENCODING[p.format],
    step: p.width * RAW_BYTES_PER_PIXEL[p.format],
    data: toBase64(p.data),
  } satisfies MessageOf<'foxglove.RawImage'>);
}

/** The message for a (validated) source event; the event's time and seq travel in the MCAP message header. */
export function encodeEvent(event: AnySourceEvent): EncodedMessage {
  const timestamp = foxgloveTime(event.time);
  switch (event.modality) {
    case 'audio':
      return json('foxglove.RawAudio', {
        timestamp,
        data: toBase64(event.payload.samples),
        format: 'pcm-s16',
        sample_rate: event.payload.sampleRate,
        number_of_channels: event.payload.channels,
      } satisfies MessageOf<'foxglove.RawAudio'>);
    case 'video':
      return encodeVideo(event.streamId, event.time, event.payload);
    case 'text':
      return json('braid.Text', { timestamp, text: event.payload.text } satisfies MessageOf<'braid.Text'>);
    case 'label':
      return json('braid.Labels', {
        timestamp,
        labels: event.payload.labels,
      } satisfies MessageOf<'braid.Labels'>);
  }
}

/** The message for a prediction; throws an InvalidEventError (reason `bad_prediction`) if JSON cannot carry it. */
export function encodePrediction(p: Prediction): EncodedMessage {
  const message = {
    timestamp: foxgloveTime(p.windowEnd),
    streamId: p.streamId,
    windowIndex: p.windowIndex,
    windowStart: p.windowStart,
    windowEnd: p.windowEnd,
    scores: p.scores,
    present: p.present,
  } satisfies MessageOf<'braid.Prediction'>;
  // NaN or Infinity scores would turn into null in JSON and make the file unreadable later: refuse them here.
  const check = SCHEMAS['braid.Prediction'].validator.safeParse(message);
  if (!check.success) {
    const issue = check.error.issues[0];
    throw new InvalidEventError(
      issue?.path.join('.') || 'prediction',
      'bad_prediction',
      `prediction does not fit braid.Prediction: ${issue?.path.join('.')} ${issue?.message}`,
    );
  }
  return json('braid.Prediction', message);
}

/** Which modality each schema can carry; a channel whose pair is not here is not a braid event channel. */
export const SCHEMA_MODALITY: Readonly<Partial<Record<SchemaName, Modality>>> = {
  'foxglove.RawAudio': 'audio',
  'foxglove.RawImage': 'video',
  'foxglove.CompressedImage': 'video',
  'braid.Text': 'text',
  'braid.Labels': 'label',
};

function parse<S extends SchemaName>(schema: S, data: Uint8Array): MessageOf<S> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8'));
  } catch (error) {
    throw new TypeError(`${schema} message is not JSON (${(error as Error).message})`);
  }
  const result = SCHEMAS[schema].validator.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new TypeError(
      `${schema} message does not match its schema: ${issue?.path.join('.')} ${issue?.message}`,
    );
  }
  return result.data as MessageOf<S>;
}

/** base64 to a fresh, aligned byte array; Buffer.from skips characters that are not base64, so check the length. */
function fromBase64(text: string, field: string): Uint8Array {
  const unpadded = text.endsWith('==') ? text.length - 2 : text.endsWith('=') ? text.length - 1 : text.length;
  const expected = Math.floor((unpadded * 3) / 4);
  const decoded = Buffer.from(text, 'base64');
  if (decoded.byteLength !== expected) throw new TypeError(`${field} is not valid base64`);
  const bytes = new Uint8Array(decoded.byteLength);
  bytes.set(decoded);
  return bytes;
}

const RAW_FORMAT: Readonly<Record<string, 'gray' | 'rgb'>> = { mono8: 'gray', rgb8: 'rgb' };

function decodeVideo(schema: SchemaName, data: Uint8Array): VideoPayload {
  if (schema === 'foxglove.CompressedImage') {
    const m = parse(schema, data);
    if (m.format !== 'jpeg' && m.format !== 'png')
      throw new TypeError(`CompressedImage format must be jpeg or png, got "${m.format}"`);
    return { format: m.format, data: fromBase64(m.data, 'CompressedImage.data') };
  }
  const m = parse('foxglove.RawImage', data);
  const format = RAW_FORMAT[m.encoding];
  if (format === undefined)
    throw new TypeError(`RawImage encoding must be mono8 or rgb8, got "${m.encoding}"`);
  if (m.step !== m.width * RAW_BYTES_PER_PIXEL[format])
    throw new TypeError(
      `RawImage step ${m.step} has row padding; braid expects ${m.width * RAW_BYTES_PER_PIXEL[format]}`,
    );
  return { format, width: m.width, height: m.height, data: fromBase64(m.data, 'RawImage.data') };
}

function decodeAudio(data: Uint8Array): AudioPayload {
  const m = parse('foxglove.RawAudio', data);
  if (m.format !== 'pcm-s16') throw new TypeError(`RawAudio format must be pcm-s16, got "${m.format}"`);
  const bytes = fromBase64(m.data, 'RawAudio.data');
  if (bytes.byteLength % 2 !== 0)
    throw new TypeError(`RawAudio data has an odd byte count ${bytes.byteLength}`);
  return { sampleRate: m.sample_rate, channels: m.number_of_channels, samples: new Int16Array(bytes.buffer) };
}

/**
 * Rebuilds a source event from a message. Throws a TypeError saying what was wrong; the caller still runs
 * `validateEvent` on the result, so payload rules live in one place.
 */
export function decodeEvent(
  schema: SchemaName,
  channel: { readonly streamId: string; readonly modality: Modality },
  time: Micros,
  seq: number,
  data: Uint8Array,
): AnySourceEvent {
  const head = { streamId: channel.streamId, time, seq };
  switch (channel.modality) {
    case 'audio':
      return { ...head, modality: 'audio', payload: decodeAudio(data) };
    case 'video':
      return { ...head, modality: 'video', payload: decodeVideo(schema, data) };
    case 'text':
      return { ...head, modality: 'text', payload: { text: parse('braid.Text', data).text } };
    case 'label':
      return { ...head, modality: 'label', payload: { labels: parse('braid.Labels', data).labels } };
  }
}

export function decodePrediction(data: Uint8Array): Prediction {
  const m = parse('braid.Prediction', data);
  return {
    streamId: m.streamId,
    windowIndex: m.windowIndex,
    windowStart: m.windowStart,
    windowEnd: m.windowEnd,
    scores: m.scores,
    present: m.present,
  };
}
