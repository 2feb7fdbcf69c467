import { InvalidEventError } from './errors.js';
import { audioFrameTime, MAX_TIME_MICROS, type Micros } from './time.js';

export const MODALITIES = ['audio', 'video', 'text', 'label'] as const;
export type Modality = (typeof MODALITIES)[number];

/** Interleaved little-endian PCM16 audio, mono unless `channels` says otherwise. */
export interface AudioPayload {
  readonly sampleRate: number;
  readonly channels: number;
  readonly samples: Int16Array;
}

export type RawPixelFormat = 'gray' | 'rgb';
export type VideoPayload =
  | {
      readonly format: RawPixelFormat;
      readonly width: number;
      readonly height: number;
      readonly data: Uint8Array;
    }
  | { readonly format: 'jpeg' | 'png'; readonly data: Uint8Array };

export interface TextPayload {
  readonly text: string;
}

/** Ground truth for training: each named label is on (1) or off (0) from this event's time until the next one. */
export interface LabelPayload {
  readonly labels: Readonly<Record<string, number>>;
}

export interface PayloadByModality {
  audio: AudioPayload;
  video: VideoPayload;
  text: TextPayload;
  label: LabelPayload;
}

/**
 * One timestamped event from a source. `time` is the originating (capture) time in µs (see core/time.ts); `seq`
 * counts events of this stream and modality from 0, so gaps and reorderings can be seen downstream.
 */
export interface SourceEvent<M extends Modality = Modality> {
  readonly streamId: string;
  readonly modality: M;
  readonly time: Micros;
  readonly seq: number;
  readonly payload: PayloadByModality[M];
}

export type AnySourceEvent = { [M in Modality]: SourceEvent<M> }[Modality];

export interface EventLimits {
  /** Largest payload accepted, in bytes (text counted as UTF-16 code units × 2). */
  readonly maxPayloadBytes: number;
  /** Longest stream id accepted. */
  readonly maxStreamIdLength: number;
}

export const DEFAULT_EVENT_LIMITS: EventLimits = { maxPayloadBytes: 8 * 1024 * 1024, maxStreamIdLength: 128 };

export function isModality(value: unknown): value is Modality {
  return typeof value === 'string' && (MODALITIES as readonly string[]).includes(value);
}

export function payloadBytes(event: AnySourceEvent): number {
  switch (event.modality) {
    case 'audio':
      return event.payload.samples.byteLength;
    case 'video':
      return event.payload.data.byteLength;
    case 'text':
      return event.payload.text.length * 2;
    case 'label':
      return Object.keys(event.payload.labels).length * 16;
  }
}

function fail(field: string, reason: string, message: string): never {
  throw new InvalidEventError(field, reason, message);
}

/**
 * Checks an event from outside (a socket, a file, a user callback) and returns it typed. Throws an
 * {@link InvalidEventError} whose `field` names what was wrong and whose `reason` is a stable counter key.
 */
export function validateEvent(value: unknown, limits: EventLimits = DEFAULT_EVENT_LIMITS): AnySourceEvent {
  if (typeof value !== 'object' || value === null) fail('event', 'not_object', 'event must be an object');
  const e = value as Record<string, unknown>;
  const streamId = e['streamId'];
  if (typeof streamId !== 'string' || streamId.length === 0)
    fail('streamId', 'missing_stream_id', 'event.streamId must be a non-empty string');
  if (streamId.length > limits.maxStreamIdLength)
    fail(
      'streamId',
      'stream_id_too_long',
      `event.streamId is longer than ${limits.maxStreamIdLength} characters`,
    );
  if (!isModality(e['modality']))
    fail(
      'modality',
      'unknown_modality',
      `event.modality must be one of ${MODALITIES.join('|')}, got ${JSON.stringify(e['modality'])}`,
    );
  const time = e['time'];
  if (typeof time !== 'number' || !Number.isFinite(time))
    fail('time', 'non_finite_time', `event.time must be a finite number of µs, got ${String(time)}`);
  if (time < 0) fail('time', 'negative_time', `event.time must not be negative, got ${time}`);
  if (time > MAX_TIME_MICROS) fail('time', 'absurd_time', `event.time ${time} µs is after the year 2200`);
  if (!Number.isInteger(time)) fail('time', 'fractional_time', `event.time must be whole µs, got ${time}`);
  const seq = e['seq'];
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0)
    fail('seq', 'bad_seq', `event.seq must be a non-negative integer, got ${String(seq)}`);
  const event = value as AnySourceEvent;
  validatePayload(event);
  const bytes = payloadBytes(event);
  if (bytes > limits.maxPayloadBytes)
    fail(
      'payload',
      'oversized_payload',
      `payload of ${bytes} bytes exceeds the limit of ${limits.maxPayloadBytes}`,
    );
  return event;
}

function validatePayload(event: AnySourceEvent): void {
  const p = event.payload as unknown as Record<string, unknown> | null;
  if (typeof p !== 'object' || p === null)
    fail('payload', 'missing_payload', 'event.payload must be an object');
  switch (event.modality) {
    case 'audio': {
      if (!(p['samples'] instanceof Int16Array))
        fail('payload.samples', 'bad_audio', 'audio payload.samples must be an Int16Array');
      const rate = p['sampleRate'];
      if (typeof rate !== 'number' || !Number.isInteger(rate) || rate < 1000 || rate > 384_000)
        fail(
          'payload.sampleRate',
          'bad_sample_rate',
          `audio sampleRate must be 1000..384000 Hz, got ${String(rate)}`,
        );
      const ch = p['channels'];
      if (typeof ch !== 'number' || !Number.isInteger(ch) || ch < 1 || ch > 8)
        fail('payload.channels', 'bad_channels', `audio channels must be 1..8, got ${String(ch)}`);
      if ((p['samples'] as Int16Array).length % ch !== 0)
        fail('payload.samples', 'bad_audio', 'audio sample count is not a multiple of the channel count');
      return;
    }
    case 'video': {
      if (!(p['data'] instanceof Uint8Array))
        fail('payload.data', 'bad_video', 'video payload.data must be bytes');
      const format = p['format'];
      if (format === 'jpeg' || format === 'png') return;
      if (format !== 'gray' && format !== 'rgb')
        fail(
          'payload.format',
          'bad_video_format',
          `video format must be gray|rgb|jpeg|png, got ${String(format)}`,
        );
      const { width, height } = p as { width: unknown; height: unknown };
      if (!isDimension(width) || !isDimension(height))
        fail('payload.width', 'bad_video_size', 'raw video needs integer width and height in 1..4096');
      const expected = (width as number) * (height as number) * (format === 'rgb' ? 3 : 1);
      if ((p['data'] as Uint8Array).byteLength !== expected)
        fail(
          'payload.data',
          'bad_video_size',
          `raw ${format} ${width}x${height} frame needs ${expected} bytes, got ${(p['data'] as Uint8Array).byteLength}`,
        );
      return;
    }
    case 'text':
      if (typeof p['text'] !== 'string')
        fail('payload.text', 'bad_text', 'text payload.text must be a string');
      return;
    case 'label': {
      const labels = p['labels'];
      if (typeof labels !== 'object' || labels === null)
        fail('payload.labels', 'bad_label', 'label payload.labels must be an object of name -> 0|1');
      for (const [name, v] of Object.entries(labels as Record<string, unknown>))
        if (typeof v !== 'number' || !Number.isFinite(v))
          fail('payload.labels', 'bad_label', `label "${name}" must be a finite number`);
      return;
    }
  }
}

/** A raw video frame's width or height: an integer in 1..4096. */
export const isDimension = (v: unknown): v is number =>
  typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 4096;

/**
 * Control messages that travel in the same stream as events. `open` declares which modalities a stream will send, so
 * its windows wait for all of them from the very first window (otherwise a modality counts once its first event
 * arrives); `close` flushes the stream's open windows and frees its state; `reset` starts a new time epoch for one
 * source (a device restart) without restarting the pipeline; `restart` starts the whole stream's timeline again
 * (its clock jumped): buffered events and open windows are discarded and the window grid starts afresh, while the
 * stream stays open and its model state is kept; `suspend` holds a stream whose producer was cut off (its sources
 * do not go idle, its open windows wait) until `resume` or `close`; `gap` says that a source's events between two
 * capture times were lost (a producer that resumed without resending them), so the windows they fall in are marked
 * partial; `progress` is the producer's promise that every event of
 * the stream captured before `time` has been sent (MediaPipe's timestamp bound), so windows ending by then can close
 * at once instead of waiting for the next frame of a slow modality.
 */
export type StreamControl =
  | { readonly control: 'open'; readonly streamId: string; readonly modalities?: readonly Modality[] }
  | { readonly control: 'close'; readonly streamId: string }
  | { readonly control: 'reset'; readonly streamId: string; readonly modality: Modality }
  | { readonly control: 'restart'; readonly streamId: string }
  | { readonly control: 'suspend'; readonly streamId: string }
  | { readonly control: 'resume'; readonly streamId: string }
  | {
      readonly control: 'gap';
      readonly streamId: string;
      readonly modality: Modality;
      /** Capture times between which the source's events were lost: (from, to), both exclusive. */
      readonly from: Micros;
      readonly to: Micros;
    }
  | { readonly control: 'progress'; readonly streamId: string; readonly time: Micros };

export type StreamInput = AnySourceEvent | StreamControl;

export const isStreamControl = (input: unknown): input is StreamControl =>
  typeof input === 'object' && input !== null && 'control' in input;

/**
 * The capture time an event reaches: an audio frame's end (where the next frame, stamped from the sample count,
 * starts), any other event's own time. Once a source has sent it, in capture order, everything that source captured
 * before this time has been sent: the progress bound the event can carry.
 */
export function capturedThrough(event: AnySourceEvent): Micros {
  if (event.modality !== 'audio') return event.time;
  const { samples, channels, sampleRate } = event.payload;
  return audioFrameTime(event.time, samples.length / channels, sampleRate);
}
