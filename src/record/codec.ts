import { InvalidEventError } from '../core/errors.js';
import type {
  AnySourceEvent,
  AudioPayload,
  Modality,
  RawPixelFormat,
  SourceEvent,
  VideoPayload,
} from '../core/events.js';
import { MICROS_PER_SECOND, type Micros } from '../core/time.js';
import type { Prediction } from '../core/window.js';
import type { LabelEvent } from '../events/event-tracker.js';
import { protoSchema } from './proto-schemas.js';
import { type MessageEncoding, SCHEMAS, type SchemaName } from './schemas.js';

/** One event or prediction as the bytes of an MCAP message, with the schema they follow. */
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

/** MCAP log time of another tool's file to µs: whole µs, the rest dropped (a capture clock is not finer anyway). */
export const nanosToMicrosFloor = (ns: bigint): Micros => Number(ns / 1000n);

const RAW_ENCODING = { gray: 'mono8', rgb: 'rgb8' } as const;
const RAW_BYTES_PER_PIXEL = { gray: 1, rgb: 3 } as const;

type RawVideo = Extract<VideoPayload, { format: RawPixelFormat }>;
// TS does not narrow VideoPayload on `format` (one member's discriminant is itself a union), hence the guard.
const isRaw = (p: VideoPayload): p is RawVideo => p.format === 'gray' || p.format === 'rgb';

/** Bytes as the encoding carries them: raw in protobuf, base64 in JSON (Foxglove's convention). */
const bytesField = (bytes: ArrayBufferView, encoding: MessageEncoding): Uint8Array | string => {
  const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return encoding === 'protobuf' ? view : Buffer.from(view).toString('base64');
};

const timeField = (t: Micros, encoding: MessageEncoding) => {
  const sec = Math.floor(t / MICROS_PER_SECOND);
  const nsec = (t % MICROS_PER_SECOND) * 1000;
  return encoding === 'protobuf' ? { seconds: sec, nanos: nsec } : { sec, nsec };
};

/** Named numbers as the encoding carries them: an object in JSON, a list of { key, value } in protobuf. */
const entries = (values: Readonly<Record<string, number>>, encoding: MessageEncoding) =>
  encoding === 'json' ? values : Object.entries(values).map(([key, value]) => ({ key, value }));

function encode(schema: SchemaName, message: object, encoding: MessageEncoding): EncodedMessage {
  if (encoding === 'json') return { schema, data: Buffer.from(JSON.stringify(message)) };
  return { schema, data: protoSchema(schema).type.encode(message).finish() };
}

function encodeVideo(streamId: string, time: Micros, p: VideoPayload, encoding: MessageEncoding) {
  const timestamp = timeField(time, encoding);
  if (!isRaw(p))
    return encode(
      'foxglove.CompressedImage',
      { timestamp, frame_id: streamId, data: bytesField(p.data, encoding), format: p.format },
      encoding,
    );
  return encode(
    'foxglove.RawImage',
    {
      timestamp,
      frame_id: streamId,
      width: p.width,
      height: p.height,
      encoding: RAW_ENCODING[p.format],
      step: p.width * RAW_BYTES_PER_PIXEL[p.format],
      data: bytesField(p.data, encoding),
    },
    encoding,
  );
}

/** The message for a (validated) source event; the event's time and seq travel in the MCAP message header. */
export function encodeEvent(event: AnySourceEvent, encoding: MessageEncoding = 'protobuf'): EncodedMessage {
  const timestamp = timeField(event.time, encoding);
  switch (event.modality) {
    case 'audio':
      return encode(
        'foxglove.RawAudio',
        {
          timestamp,
          data: bytesField(event.payload.samples, encoding),
          format: 'pcm-s16',
          sample_rate: event.payload.sampleRate,
          number_of_channels: event.payload.channels,
        },
        encoding,
      );
    case 'video':
      return encodeVideo(event.streamId, event.time, event.payload, encoding);
    case 'text':
      return encode('braid.Text', { timestamp, text: event.payload.text }, encoding);
    case 'label':
      return encode('braid.Labels', { timestamp, labels: entries(event.payload.labels, encoding) }, encoding);
  }
}

/** foxglove.Log level INFO: the text is shown in Foxglove's Log panel, named after its stream. */
const LOG_INFO = 2;

/** The foxglove.Log copy of a text event, for Foxglove's Log panel. */
export function encodeLogView(
  event: SourceEvent<'text'>,
  encoding: MessageEncoding = 'protobuf',
): EncodedMessage {
  return encode(
    'foxglove.Log',
    {
      timestamp: timeField(event.time, encoding),
      level: LOG_INFO,
      message: event.payload.text,
      name: event.streamId,
      file: '',
      line: 0,
    },
    encoding,
  );
}

/** Throws an InvalidEventError (reason `reason`) naming the first field of `message` that does not fit `schema`. */
function checkFits(schema: SchemaName, message: object, what: string, reason: string): void {
  const check = SCHEMAS[schema].validator.safeParse(message);
  if (check.success) return;
  const issue = check.error.issues[0];
  throw new InvalidEventError(
    issue?.path.join('.') || what,
    reason,
    `${what} does not fit ${schema}: ${issue?.path.join('.')} ${issue?.message}`,
  );
}

/**
 * The message for a prediction, with the model that made it; throws an InvalidEventError (reason `bad_prediction`)
 * for what no encoding can carry (NaN or infinite scores, times that are not whole µs).
 */
export function encodePrediction(
  p: Prediction,
  model?: string,
  encoding: MessageEncoding = 'protobuf',
): EncodedMessage {
  const message = {
    timestamp: timeField(p.windowEnd, 'json'),
    streamId: p.streamId,
    windowIndex: p.windowIndex,
    windowStart: p.windowStart,
    windowEnd: p.windowEnd,
    scores: p.scores,
    present: p.present,
    ...(model !== undefined && { model }),
  };
  checkFits('braid.Prediction', message, 'prediction', 'bad_prediction');
  return encode(
    'braid.Prediction',
    encoding === 'json'
      ? message
      : { ...message, timestamp: timeField(p.windowEnd, encoding), scores: entries(p.scores, encoding) },
    encoding,
  );
}

/** A label's on/off event, logged at its time; throws an InvalidEventError (reason `bad_label_event`) for what cannot be carried. */
export function encodeLabelEvent(
  e: LabelEvent,
  model?: string,
  encoding: MessageEncoding = 'protobuf',
): EncodedMessage {
  const message = {
    timestamp: timeField(e.time, 'json'),
    streamId: e.streamId,
    label: e.label,
    state: e.state,
    time: e.time,
    score: e.score,
    windowIndex: e.windowIndex,
    ...(e.closed && { closed: true }),
    ...(model !== undefined && { model }),
  };
  checkFits('braid.LabelEvent', message, 'event', 'bad_label_event');
  return encode(
    'braid.LabelEvent',
    encoding === 'json' ? message : { ...message, timestamp: timeField(e.time, encoding) },
    encoding,
  );
}

// ---- Reading: a decoded message (JSON parsed and checked, or protobuf decoded) to an event or a prediction.

/** A message as decoded from either encoding: JSON gives byte fields as base64 and int64 as numbers, protobuf as bytes and Longs. */
export type DecodedMessage = Readonly<Record<string, unknown>>;

/**
 * Where decoded byte fields are copied to: a view of a decoded message would pin the whole chunk it came from, and a
 * fresh ArrayBuffer per event costs more than decoding the event. An arena hands out 8-byte aligned slices of blocks
 * it allocates 64 KiB at a time (a large field gets a block of its own), so a batch of events shares a few buffers.
 */
export class ByteArena {
  static readonly BLOCK = 64 * 1024;
  #block = new ArrayBuffer(0);
  #used = 0;

  copy(src: Uint8Array): Uint8Array {
    const n = src.byteLength;
    if (n > ByteArena.BLOCK / 4) {
      const own = new Uint8Array(n);
      own.set(src);
      return own;
    }
    if (this.#used + n > this.#block.byteLength) {
      this.#block = new ArrayBuffer(ByteArena.BLOCK);
      this.#used = 0;
    }
    const out = new Uint8Array(this.#block, this.#used, n);
    out.set(src);
    this.#used += (n + 7) & ~7;
    return out;
  }
}

const freshBytes = { copy: (src: Uint8Array) => new Uint8Array(src) };

/** Bytes of a field as an aligned copy (see ByteArena). */
function bytesOf(value: unknown, field: string, arena: { copy(src: Uint8Array): Uint8Array }): Uint8Array {
  if (value instanceof Uint8Array) return arena.copy(value);
  if (typeof value !== 'string') throw new TypeError(`${field} must be bytes, got ${typeof value}`);
  // Buffer.from skips characters that are not base64, so check the length.
  const unpadded = value.endsWith('==')
    ? value.length - 2
    : value.endsWith('=')
      ? value.length - 1
      : value.length;
  const decoded = Buffer.from(value, 'base64');
  if (decoded.byteLength !== Math.floor((unpadded * 3) / 4))
    throw new TypeError(`${field} is not valid base64`);
  const bytes = new Uint8Array(decoded.byteLength);
  bytes.set(decoded);
  return bytes;
}

const text = (value: unknown, field: string): string => {
  if (typeof value !== 'string') throw new TypeError(`${field} must be a string, got ${typeof value}`);
  return value;
};

/** A number from JSON, or from protobuf (int64 arrives as a Long). */
function numberOf(value: unknown, field: string): number {
  if (typeof value === 'number') return value;
  const long = value as { toNumber?: () => number } | null;
  if (typeof long?.toNumber === 'function') return long.toNumber();
  throw new TypeError(`${field} must be a number, got ${typeof value}`);
}

/**
 * Named numbers: an object in JSON; in protobuf a list of `{ key, value }` entries (braid's Entry, or a map<string,
 * double> of another writer, which protobufjs decodes from a FileDescriptorSet as the same entries).
 */
function numberRecord(value: unknown, field: string): Record<string, number> {
  if (typeof value !== 'object' || value === null) throw new TypeError(`${field} must be a map of numbers`);
  const out: Record<string, number> = {};
  if (Array.isArray(value))
    for (const entry of value as { key?: unknown; value?: unknown }[]) {
      const key = text(entry?.key, `${field} key`);
      out[key] = numberOf(entry.value ?? 0, `${field}.${key}`);
    }
  else for (const [k, v] of Object.entries(value)) out[k] = numberOf(v, `${field}.${k}`);
  return out;
}

/** Bytes per pixel and how to turn a row into braid's gray or rgb pixels, per foxglove.RawImage encoding. */
const RAW_IMAGE: Readonly<
  Record<string, { format: RawPixelFormat; bpp: number; order?: readonly number[] }>
> = {
  mono8: { format: 'gray', bpp: 1 },
  '8UC1': { format: 'gray', bpp: 1 },
  rgb8: { format: 'rgb', bpp: 3 },
  bgr8: { format: 'rgb', bpp: 3, order: [2, 1, 0] },
  '8UC3': { format: 'rgb', bpp: 3, order: [2, 1, 0] },
  rgba8: { format: 'rgb', bpp: 4, order: [0, 1, 2] },
  bgra8: { format: 'rgb', bpp: 4, order: [2, 1, 0] },
};

/** A foxglove.RawImage as a braid raw frame: padding rows stripped, BGR and alpha turned into RGB. */
function rawImage(m: DecodedMessage, arena: ByteArena | typeof freshBytes): VideoPayload {
  const encoding = text(m['encoding'], 'RawImage.encoding');
  const layout = RAW_IMAGE[encoding];
  if (layout === undefined)
    throw new TypeError(
      `RawImage encoding "${encoding}" is not one braid reads (${Object.keys(RAW_IMAGE).join(', ')})`,
    );
  const width = numberOf(m['width'], 'RawImage.width');
  const height = numberOf(m['height'], 'RawImage.height');
  const step = numberOf(m['step'], 'RawImage.step');
  const src = bytesOf(m['data'], 'RawImage.data', arena);
  if (step < width * layout.bpp)
    throw new TypeError(`RawImage step ${step} is less than width ${width} × ${layout.bpp} bytes per pixel`);
  if (src.byteLength < step * height)
    throw new TypeError(
      `RawImage data has ${src.byteLength} bytes, ${height} rows of step ${step} need ${step * height}`,
    );
  const out = layout.format === 'gray' ? 1 : 3;
  if (step === width * out && layout.order === undefined && src.byteLength === step * height)
    return { format: layout.format, width, height, data: src };
  const data = new Uint8Array(width * height * out);
  const order = layout.order ?? [0, 1, 2];
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const from = y * step + x * layout.bpp;
      const to = (y * width + x) * out;
      if (out === 1) data[to] = src[from] as number;
      else for (let c = 0; c < 3; c++) data[to + c] = src[from + (order[c] as number)] as number;
    }
  return { format: layout.format, width, height, data };
}

function compressedImage(m: DecodedMessage, arena: ByteArena | typeof freshBytes): VideoPayload {
  const format = text(m['format'], 'CompressedImage.format').toLowerCase();
  const known = format === 'jpg' || format === 'jpeg' ? 'jpeg' : format === 'png' ? 'png' : undefined;
  if (known === undefined) throw new TypeError(`CompressedImage format must be jpeg or png, got "${format}"`);
  return { format: known, data: bytesOf(m['data'], 'CompressedImage.data', arena) };
}

function audio(m: DecodedMessage, arena: ByteArena | typeof freshBytes): AudioPayload {
  const format = text(m['format'], 'RawAudio.format');
  if (format !== 'pcm-s16') throw new TypeError(`RawAudio format must be pcm-s16, got "${format}"`);
  const bytes = bytesOf(m['data'], 'RawAudio.data', arena);
  if (bytes.byteLength % 2 !== 0)
    throw new TypeError(`RawAudio data has an odd byte count ${bytes.byteLength}`);
  return {
    sampleRate: numberOf(m['sample_rate'], 'RawAudio.sample_rate'),
    channels: numberOf(m['number_of_channels'], 'RawAudio.number_of_channels'),
    samples: new Int16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2),
  };
}

/**
 * Rebuilds a source event from a decoded message of a schema that can carry `channel.modality` (see
 * SCHEMA_MODALITY). Throws a TypeError saying what was wrong; the caller still runs `validateEvent` on the result,
 * so payload rules live in one place.
 */
export function decodeEvent(
  schema: SchemaName,
  channel: { readonly streamId: string; readonly modality: Modality },
  time: Micros,
  seq: number,
  m: DecodedMessage,
  arena: ByteArena | typeof freshBytes = freshBytes,
): AnySourceEvent {
  // Literals in the field order sources use, so every event has one shape (no spread: it costs more than decoding).
  const { streamId } = channel;
  switch (schema) {
    case 'foxglove.RawAudio':
      return { streamId, modality: 'audio', time, seq, payload: audio(m, arena) };
    case 'foxglove.RawImage':
      return { streamId, modality: 'video', time, seq, payload: rawImage(m, arena) };
    case 'foxglove.CompressedImage':
      return { streamId, modality: 'video', time, seq, payload: compressedImage(m, arena) };
    case 'foxglove.Log':
      return { streamId, modality: 'text', time, seq, payload: { text: text(m['message'], 'Log.message') } };
    case 'braid.Text':
      return { streamId, modality: 'text', time, seq, payload: { text: text(m['text'], 'Text.text') } };
    case 'braid.Labels':
      return {
        streamId,
        modality: 'label',
        time,
        seq,
        payload: { labels: numberRecord(m['labels'], 'Labels.labels') },
      };
    case 'braid.Prediction':
      throw new TypeError('braid.Prediction carries predictions, not events');
    case 'braid.LabelEvent':
      throw new TypeError('braid.LabelEvent carries label events, not source events');
  }
}

/** A prediction and the model that made it (absent in format version 1). */
export function decodePrediction(m: DecodedMessage): { prediction: Prediction; model?: string } {
  const present = (m['present'] ?? {}) as Record<string, unknown>;
  const flag = (k: string) => present[k] === true;
  const model = m['model'];
  return {
    prediction: {
      streamId: text(m['streamId'], 'Prediction.streamId'),
      windowIndex: numberOf(m['windowIndex'], 'Prediction.windowIndex'),
      windowStart: numberOf(m['windowStart'], 'Prediction.windowStart'),
      windowEnd: numberOf(m['windowEnd'], 'Prediction.windowEnd'),
      scores: numberRecord(m['scores'], 'Prediction.scores'),
      present: { audio: flag('audio'), video: flag('video'), text: flag('text'), label: flag('label') },
    },
    ...(typeof model === 'string' && model !== '' && { model }),
  };
}

/** A recorded label event and the model whose predictions made it. */
export function decodeLabelEvent(m: DecodedMessage): { event: LabelEvent; model?: string } {
  const state = m['state'];
  if (state !== 'on' && state !== 'off')
    throw new TypeError(`LabelEvent.state must be on or off, got ${JSON.stringify(state)}`);
  const model = m['model'];
  return {
    event: {
      streamId: text(m['streamId'], 'LabelEvent.streamId'),
      label: text(m['label'], 'LabelEvent.label'),
      state,
      time: numberOf(m['time'], 'LabelEvent.time'),
      score: numberOf(m['score'], 'LabelEvent.score'),
      windowIndex: numberOf(m['windowIndex'], 'LabelEvent.windowIndex'),
      ...(m['closed'] === true && { closed: true as const }),
    },
    ...(typeof model === 'string' && model !== '' && { model }),
  };
}
