import { z } from 'zod';
import { BraidError } from '../core/errors.js';
import { MAX_TIME_MICROS } from '../core/time.js';

/**
 * The braid WebSocket protocol, version 1 (docs/protocol.md). JSON messages are validated with zod at run time;
 * audio and video travel as binary frames with a 16-byte little-endian header.
 */
export const PROTOCOL_VERSION = 1;

const streamId = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[\w.:@-]+$/, 'stream id may contain letters, digits and _ . : @ - only');
const time = z.number().int().nonnegative().max(MAX_TIME_MICROS);
/** Sequence numbers are uint32, as in binary frames and in MCAP recordings. */
const seq = z.number().int().nonnegative().max(0xffff_ffff);

export const helloSchema = z
  .object({
    type: z.literal('hello'),
    version: z.literal(PROTOCOL_VERSION),
    streamId,
    modalities: z.array(z.enum(['audio', 'video', 'text', 'label'])).min(1),
    audio: z
      .object({
        sampleRate: z.number().int().min(8000).max(48000),
        format: z.literal('pcm16'),
        channels: z.union([z.literal(1), z.literal(2)]).default(1),
      })
      .optional(),
    video: z
      .discriminatedUnion('format', [
        z.object({
          format: z.enum(['gray', 'rgb']),
          width: z.number().int().min(1).max(1920),
          height: z.number().int().min(1).max(1080),
        }),
        z.object({ format: z.enum(['jpeg', 'png']) }),
      ])
      .optional(),
  })
  .strict()
  .refine((h) => !h.modalities.includes('audio') || h.audio !== undefined, {
    message: 'hello.audio {sampleRate, format: "pcm16"} is required when modalities include audio',
    path: ['audio'],
  })
  .refine((h) => !h.modalities.includes('video') || h.video !== undefined, {
    message: 'hello.video {format, width, height} is required when modalities include video',
    path: ['video'],
  });
export type Hello = z.infer<typeof helloSchema>;

export const textMessageSchema = z.object({ type: z.literal('text'), time, seq, text: z.string() }).strict();
export const labelMessageSchema = z
  .object({ type: z.literal('label'), time, seq, labels: z.record(z.string(), z.number()) })
  .strict();
export const closeMessageSchema = z.object({ type: z.literal('close') }).strict();
/** The producer has sent every event of its stream captured before `time` (all modalities). */
export const progressMessageSchema = z.object({ type: z.literal('progress'), time }).strict();
/**
 * The producer's clock jumped (a device restart, a bad timestamp): start the stream's timeline again. Open windows
 * and buffered events are discarded (reported), the model keeps the stream's state.
 */
export const resetMessageSchema = z.object({ type: z.literal('reset') }).strict();
export const producerMessageSchema = z.discriminatedUnion('type', [
  textMessageSchema,
  labelMessageSchema,
  closeMessageSchema,
  progressMessageSchema,
  resetMessageSchema,
]);
export type ProducerMessage = z.infer<typeof producerMessageSchema>;

export const subscribeSchema = z
  .object({ subscribe: z.union([z.literal('*'), z.array(streamId).max(1000)]) })
  .strict();

/** Binary frame: [version u8][modality u8: 1 audio, 2 video][reserved u16][time µs f64][seq u32][payload]. */
export const FRAME_HEADER_BYTES = 16;
export const FRAME_MODALITY = { audio: 1, video: 2 } as const;

export interface BinaryFrame {
  readonly modality: 'audio' | 'video';
  readonly time: number;
  readonly seq: number;
  readonly payload: Uint8Array;
}

/** Which message a refusal is about, when it had a modality, seq or time. */
export interface MessageIdentity {
  readonly modality?: 'audio' | 'video' | 'text' | 'label';
  readonly seq?: number;
  readonly time?: number;
}

export class ProtocolError extends BraidError {
  override readonly name = 'ProtocolError';
  constructor(
    readonly reason: string,
    message: string,
    readonly subject: MessageIdentity = {},
  ) {
    super('BRAID_ERR_PROTOCOL', message);
  }
}

export function encodeFrame(frame: BinaryFrame): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + frame.payload.byteLength);
  const view = new DataView(out.buffer);
  view.setUint8(0, PROTOCOL_VERSION);
  view.setUint8(1, FRAME_MODALITY[frame.modality]);
  view.setFloat64(4, frame.time, true);
  view.setUint32(12, frame.seq, true);
  out.set(frame.payload, FRAME_HEADER_BYTES);
  return out;
}

export function decodeFrame(data: Uint8Array): BinaryFrame {
  if (data.byteLength < FRAME_HEADER_BYTES)
    throw new ProtocolError(
      'short_frame',
      `binary frame of ${data.byteLength} bytes is shorter than its ${FRAME_HEADER_BYTES}-byte header`,
    );
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const version = view.getUint8(0);
  if (version !== PROTOCOL_VERSION)
    throw new ProtocolError('bad_version', `binary frame version ${version}, expected ${PROTOCOL_VERSION}`);
  const code = view.getUint8(1);
  const modality = code === 1 ? 'audio' : code === 2 ? 'video' : undefined;
  if (modality === undefined)
    throw new ProtocolError(
      'bad_modality',
      `binary frame modality byte ${code}, expected 1 (audio) or 2 (video)`,
    );
  const t = view.getFloat64(4, true);
  if (!Number.isInteger(t) || t < 0 || t > MAX_TIME_MICROS)
    throw new ProtocolError('bad_time', `binary frame time ${t} is not a whole number of µs in range`);
  return { modality, time: t, seq: view.getUint32(12, true), payload: data.subarray(FRAME_HEADER_BYTES) };
}

/** zod's issues as one line naming the field, for error messages sent back to clients. */
export function describeZodError(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : 'message'}: ${i.message}`).join('; ');
}

export interface PredictionMessage {
  readonly type: 'prediction';
  readonly streamId: string;
  readonly windowIndex: number;
  readonly windowStart: number;
  readonly windowEnd: number;
  readonly scores: Record<string, number>;
  readonly present: Record<string, boolean>;
  /** ms from the window's end (capture time) to the moment the server sent the prediction. */
  readonly latencyMs: number;
  /** Predictions dropped for this subscriber since its last message (slow consumer). */
  readonly dropped?: number;
}

/**
 * An error sent to a client. For refused input it names the message (modality, seq, time, or the window) and the
 * reason; `suppressed` counts error replies held back since the previous one (a flood is answered at a capped rate).
 */
export interface ErrorMessage extends MessageIdentity {
  readonly type: 'error';
  readonly code: string;
  readonly message: string;
  readonly windowIndex?: number;
  readonly suppressed?: number;
  readonly dropped?: number;
}

export type ServerMessage =
  | PredictionMessage
  | { readonly type: 'stream'; readonly event: 'opened' | 'closed'; readonly streamId: string }
  | ErrorMessage
  | {
      readonly type: 'welcome';
      readonly version: number;
      readonly streams: string[];
      readonly labels: string[];
    }
  | { readonly type: 'stats'; readonly [key: string]: unknown };
