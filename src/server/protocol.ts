import { z } from 'zod';
import { BraidError } from '../core/errors.js';
import { type BinaryFrame, parseFrame } from '../core/frame.js';
import { MAX_TIME_MICROS } from '../core/time.js';

/**
 * The braid WebSocket protocol, version 2 (docs/protocol.md; version 1 producers are still served). Every JSON
 * message, both ways, has a zod schema here — checked at run time on what clients send, and published as JSON
 * Schema (docs/protocol.schema.json, `npm run schema`); audio and video travel as binary frames (src/core/frame.ts).
 */
export const PROTOCOL_VERSION = 2;
export const PROTOCOL_VERSIONS = [1, 2] as const;

/** What a stream id may be: it names MCAP topics (`/ID/audio`) and appears in URLs and logs. */
export const STREAM_ID_PATTERN = /^[\w.:@-]{1,128}$/;
const streamId = z
  .string()
  .min(1)
  .max(128)
  .regex(STREAM_ID_PATTERN, 'stream id may contain letters, digits and _ . : @ - only');
const time = z.number().int().nonnegative().max(MAX_TIME_MICROS);
/** Sequence numbers are uint32, as in binary frames and in MCAP recordings. */
const seq = z.number().int().nonnegative().max(0xffff_ffff);
const modality = z.enum(['audio', 'video', 'text', 'label']);

export const helloSchema = z
  .object({
    type: z.literal('hello'),
    version: z.union([z.literal(1), z.literal(2)]),
    streamId,
    // At most the four there are (a longer list fails at its length, before its items are checked one by one).
    modalities: z
      .array(modality)
      .min(1)
      .max(4)
      .refine((m) => new Set(m).size === m.length, 'lists a modality more than once'),
    audio: z
      .object({
        // Any rate and channel count parse; the server refuses what it cannot use with a code that says so
        // (unsupported_sample_rate, unsupported_channels: ingest-session.ts).
        sampleRate: z.number().int().min(1).max(1_000_000),
        format: z.literal('pcm16'),
        channels: z.number().int().min(1).max(64).default(1),
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
    /** v2: the token a previous `ready` gave, to resume (or take over) this stream. */
    resumeToken: z.string().min(1).max(128).optional(),
  })
  .strict()
  .refine((h) => !h.modalities.includes('audio') || h.audio !== undefined, {
    message: 'hello.audio {sampleRate, format: "pcm16"} is required when modalities include audio',
    path: ['audio'],
  })
  .refine((h) => !h.modalities.includes('video') || h.video !== undefined, {
    message: 'hello.video {format, width, height} is required when modalities include video',
    path: ['video'],
  })
  .refine((h) => h.version === 2 || h.resumeToken === undefined, {
    message: 'resumeToken needs protocol version 2',
    path: ['resumeToken'],
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
  .object({
    subscribe: z.union([z.literal('*'), z.array(streamId).max(1000)]),
    /** Also (or, with `predictions: false`, only) the on/off events of each label (docs/events.md). Default false. */
    events: z.boolean().optional(),
    /** Default true. */
    predictions: z.boolean().optional(),
  })
  .strict()
  .refine((m) => m.predictions !== false || m.events === true, {
    message: 'predictions: false needs events: true, or nothing would be sent',
    path: ['predictions'],
  });
export type SubscribeMessage = z.infer<typeof subscribeSchema>;

// ---- Server to client. Built from these schemas, so the published JSON Schema is what the server sends. ----

const position = z.object({ seq, time }).strict();
const windowingSchema = z
  .object({
    size: z.number().int().positive(),
    hop: z.number().int().positive(),
    phase: z.enum(['aligned', 'stream']),
    /**
     * This stream's window grid, µs: windows are [origin + k·hop, origin + k·hop + size). A producer that ends an
     * audio frame (flagged as a bound) on a window end closes that window at once, not up to a frame later.
     */
    origin: z.number().int(),
    outOfOrderness: z.number().int().nonnegative(),
    allowedLateness: z.number().int().nonnegative(),
    /** Wall-clock ms after which a silent modality stops holding windows back; null: never. */
    idleTimeoutMs: z.number().nonnegative().nullable(),
  })
  .strict();
const modelSchema = z.object({ id: z.string(), labels: z.array(z.string()) }).strict();

export const readyMessageSchema = z
  .object({
    type: z.literal('ready'),
    version: z.literal(PROTOCOL_VERSION),
    streamId,
    /** True when this hello continued a suspended (or taken-over) stream: same model state, same window grid. */
    resumed: z.boolean(),
    /** Send it in the hello of a reconnect to resume this stream. */
    resumeToken: z.string(),
    model: modelSchema,
    windowing: windowingSchema,
    accepts: z
      .object({
        audio: z
          .object({
            format: z.literal('pcm16'),
            sampleRates: z.object({ min: z.number().int(), max: z.number().int() }).strict(),
            channels: z.array(z.number().int()),
            /** The model's own rate: sent at it, nothing is resampled. */
            preferredSampleRate: z.number().int(),
          })
          .strict(),
        video: z
          .object({
            formats: z.array(z.enum(['gray', 'rgb', 'jpeg', 'png'])),
            /** What the demo page sends: raw frames of this size cost the server least. */
            preferred: z
              .object({ format: z.enum(['gray', 'rgb']), width: z.number().int(), height: z.number().int() })
              .strict(),
          })
          .strict(),
        /**
         * Binary frames may carry a progress bound at their end (flags bit 0, docs/protocol.md): a producer sending
         * them needs no progress messages. Servers before it ignore the flag, so a producer checks this first.
         */
        frameBounds: z.boolean(),
        /** Largest message, frame header included, in bytes. */
        maxMessageBytes: z.number().int().positive(),
        messagesPerSecond: z.number().positive(),
      })
      .strict(),
    /** The server pings every heartbeatMs; a connection that misses two pongs is cut off. */
    heartbeatMs: z.number().int().positive(),
    /** A producer cut off without a close is resumable for this long (ms); 0: never. */
    resumeGraceMs: z.number().int().nonnegative(),
    /** On a resume: the last seq and time the server took of each modality; send what came after. */
    last: z.partialRecord(modality, position).optional(),
  })
  .strict();
export type ReadyMessage = z.infer<typeof readyMessageSchema>;

export const welcomeMessageSchema = z
  .object({
    type: z.literal('welcome'),
    version: z.literal(PROTOCOL_VERSION),
    versions: z.array(z.number().int()),
    streams: z.array(streamId),
    labels: z.array(z.string()),
    model: modelSchema.optional(),
    heartbeatMs: z.number().int().positive(),
  })
  .strict();
export type WelcomeMessage = z.infer<typeof welcomeMessageSchema>;

export const subscribedMessageSchema = z
  .object({
    type: z.literal('subscribed'),
    /** What this subscriber now gets: every stream, or these ids (open or not yet). */
    streams: z.union([z.literal('*'), z.array(streamId)]),
    /** Of those ids, the ones not open right now (they are delivered once they open). */
    notOpen: z.array(streamId),
    /** Whether it gets predictions, and events. */
    predictions: z.boolean(),
    events: z.boolean(),
    /** Messages dropped for this subscriber since its last message (slow consumer). */
    dropped: z.number().int().positive().optional(),
  })
  .strict();
export type SubscribedMessage = z.infer<typeof subscribedMessageSchema>;

export const predictionMessageSchema = z
  .object({
    type: z.literal('prediction'),
    streamId,
    windowIndex: z.number().int(),
    windowStart: z.number().int(),
    windowEnd: z.number().int(),
    scores: z.record(z.string(), z.number()),
    present: z.record(z.string(), z.boolean()),
    /** ms from the window's end (capture time) to the moment the server sent the prediction. */
    latencyMs: z.number(),
    /** Some of the window's data was lost (a producer that resumed without resending it). */
    partial: z.literal(true).optional(),
    /** Predictions dropped for this subscriber since its last message (slow consumer). */
    dropped: z.number().int().positive().optional(),
  })
  .strict();
export type PredictionMessage = z.infer<typeof predictionMessageSchema>;

export const eventMessageSchema = z
  .object({
    type: z.literal('event'),
    streamId,
    label: z.string(),
    state: z.enum(['on', 'off']),
    /** Capture time (µs) of the window boundary where the state changed. */
    time: z.number().int(),
    /** The score of the window that began the change. */
    score: z.number(),
    windowIndex: z.number().int(),
    /** The off of a label that was on when its stream closed. */
    closed: z.literal(true).optional(),
    /** Messages dropped for this subscriber since its last message (slow consumer). */
    dropped: z.number().int().positive().optional(),
  })
  .strict();
export type EventMessage = z.infer<typeof eventMessageSchema>;

export const streamMessageSchema = z
  .object({
    type: z.literal('stream'),
    /** suspended: its producer was cut off and may resume within the grace; resumed: it did. */
    event: z.enum(['opened', 'closed', 'suspended', 'resumed']),
    streamId,
    /** Messages dropped for this subscriber since its last message (slow consumer). */
    dropped: z.number().int().positive().optional(),
  })
  .strict();
export type StreamMessage = z.infer<typeof streamMessageSchema>;

export const errorMessageSchema = z
  .object({
    type: z.literal('error'),
    code: z.string(),
    message: z.string(),
    modality: modality.optional(),
    seq: z.number().optional(),
    time: z.number().optional(),
    /** For a window dropped in front of the model. */
    windowIndex: z.number().int().optional(),
    /** Error replies held back (rate limit) since the previous one. */
    suppressed: z.number().int().positive().optional(),
    dropped: z.number().int().positive().optional(),
  })
  .strict();
/**
 * An error sent to a client. For refused input it names the message (modality, seq, time, or the window) and the
 * reason; `suppressed` counts error replies held back since the previous one (a flood is answered at a capped rate).
 */
export type ErrorMessage = z.infer<typeof errorMessageSchema>;

export const serverMessageSchema = z.discriminatedUnion('type', [
  readyMessageSchema,
  welcomeMessageSchema,
  subscribedMessageSchema,
  predictionMessageSchema,
  eventMessageSchema,
  streamMessageSchema,
  errorMessageSchema,
]);
export type ServerMessage = z.infer<typeof serverMessageSchema>;

export { type BinaryFrame, encodeFrame, FRAME_HEADER_BYTES, FRAME_MODALITY } from '../core/frame.js';

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

export function decodeFrame(data: Uint8Array): BinaryFrame {
  const frame = parseFrame(data);
  if ('reason' in frame) throw new ProtocolError(frame.reason, frame.message);
  return frame;
}

/** Issues named in an error message; a message of thousands of bad items is answered in a line, not in megabytes. */
const DESCRIBED_ISSUES = 5;
/** Longest text of one issue (a path or message that quotes what was sent can be long). */
const ISSUE_CHARACTERS = 200;

/** zod's issues as one line naming the field, for error messages sent back to clients: the first few, then a count. */
export function describeZodError(error: z.ZodError): string {
  const { issues } = error;
  const described = issues.slice(0, DESCRIBED_ISSUES).map((i) => {
    const line = `${i.path.length ? i.path.join('.') : 'message'}: ${i.message}`;
    return line.length > ISSUE_CHARACTERS ? `${line.slice(0, ISSUE_CHARACTERS - 1)}…` : line;
  });
  const more = issues.length - described.length;
  return described.join('; ') + (more > 0 ? `; and ${more} more issue${more === 1 ? '' : 's'}` : '');
}

/** Labels one label message may set: a model has a handful; a message of thousands is refused before it is parsed. */
export const MAX_MESSAGE_LABELS = 256;
