import { CompressedImage, Log, RawAudio, RawImage } from '@foxglove/schemas/jsonschema.js';
import * as z from 'zod';
import type { Modality } from '../core/events.js';

/**
 * The on-disk vocabulary of a braid recording (docs/recording.md describes it for people; this file for code).
 * Messages are protobuf by default (format version 2: MCAP `protobuf` message and schema encodings, the schema a
 * FileDescriptorSet, see proto-schemas.ts), or JSON (`json` / `jsonschema`, byte fields as base64 strings, as
 * Foxglove's JSON convention wants) when asked; version 1 files are all JSON. Both read back alike.
 */
export type MessageEncoding = 'protobuf' | 'json';
/** MCAP schema encoding that goes with each message encoding. */
export const SCHEMA_ENCODING: Readonly<Record<MessageEncoding, string>> = {
  protobuf: 'protobuf',
  json: 'jsonschema',
};
export const PROFILE = 'braid';
/**
 * Bumped when the meaning of topics, schemas or metadata changes. 2: protobuf messages by default, a foxglove.Log
 * view of each text channel, predictions carry their model. Readers take 1 and 2.
 */
export const FORMAT_VERSION = '2';
/** Name of the MCAP Metadata record holding {@link FORMAT_VERSION} and the caller's own metadata. */
export const METADATA_NAME = 'braid';

/** Channel metadata keys: readers find streams through these, never by parsing topics. */
export const CHANNEL_KEY = {
  streamId: 'braid.streamId',
  kind: 'braid.kind',
  modality: 'braid.modality',
  /** On prediction channels: the model that made them. */
  model: 'braid.model',
} as const;

/**
 * `event`: a stream's events of one modality; `prediction`: a model's predictions for a stream; `label_event`: the
 * on/off events of its labels made from those predictions (docs/events.md), on `/<streamId>/events`; `view`: a copy
 * of a stream's text as foxglove.Log on `/<streamId>/log`, for Foxglove's Log panel, which readers skip.
 */
export type ChannelKind = 'event' | 'prediction' | 'label_event' | 'view';

export const topicFor = (streamId: string, what: Modality | 'prediction' | 'events' | 'log'): string =>
  `/${streamId}/${what}`;

const time = z.object({
  sec: z.number().int().min(0),
  nsec: z.number().int().min(0).max(999_999_999),
});
export type FoxgloveTime = z.infer<typeof time>;

const textMessage = z.object({ timestamp: time, text: z.string() }).meta({
  title: 'braid.Text',
  description: 'A piece of text (transcript, caption, chat line) at its capture time',
});

const labelsMessage = z
  .object({
    timestamp: time,
    labels: z.record(z.string(), z.number()),
  })
  .meta({
    title: 'braid.Labels',
    description: 'Ground-truth labels: each named label holds its value (1 on, 0 off) from this time on',
  });

const presence = z.object({ audio: z.boolean(), video: z.boolean(), text: z.boolean(), label: z.boolean() });

const predictionMessage = z
  .object({
    timestamp: time,
    streamId: z.string().min(1),
    windowIndex: z.number().int(),
    windowStart: z.number().int().min(0),
    windowEnd: z.number().int().min(0),
    scores: z.record(z.string(), z.number()),
    present: presence,
    /** The model that made it; absent in recordings of format version 1. */
    model: z.string().optional(),
  })
  .meta({
    title: 'braid.Prediction',
    description: "A model's scores for one closed window of one stream; times are µs of originating time",
  });

const labelEventMessage = z
  .object({
    timestamp: time,
    streamId: z.string().min(1),
    label: z.string().min(1),
    state: z.enum(['on', 'off']),
    /** Capture time (µs) of the window boundary where the state changed; `timestamp` is the same time. */
    time: z.number().int().min(0),
    score: z.number(),
    windowIndex: z.number().int(),
    /** The off of a label that was on when its stream closed. */
    closed: z.boolean().optional(),
    /** The model whose predictions made it. */
    model: z.string().optional(),
  })
  .meta({
    title: 'braid.LabelEvent',
    description: "A label of a stream turned on or off (hysteresis over the model's scores); times are µs",
  });

export type TextMessage = z.infer<typeof textMessage>;
export type LabelsMessage = z.infer<typeof labelsMessage>;
export type PredictionMessage = z.infer<typeof predictionMessage>;
export type LabelEventMessage = z.infer<typeof labelEventMessage>;

// The Foxglove schemas come as JSON Schema; zod builds their validators from that very text so what we check
// on reading is exactly what we advertise on writing. The interfaces name the fields braid uses.
export interface RawAudioMessage {
  timestamp: FoxgloveTime;
  data: string;
  format: string;
  sample_rate: number;
  number_of_channels: number;
}
export interface RawImageMessage {
  timestamp: FoxgloveTime;
  frame_id: string;
  width: number;
  height: number;
  encoding: string;
  step: number;
  data: string;
}
export interface CompressedImageMessage {
  timestamp: FoxgloveTime;
  frame_id: string;
  data: string;
  format: string;
}
export interface LogMessage {
  timestamp: FoxgloveTime;
  level: number;
  message: string;
  name: string;
  file: string;
  line: number;
}

interface SchemaDef<T> {
  readonly jsonSchema: object;
  readonly validator: z.ZodType<T>;
}

const foxglove = <T>(jsonSchema: object): SchemaDef<T> => ({
  jsonSchema,
  validator: z.fromJSONSchema(jsonSchema as Parameters<typeof z.fromJSONSchema>[0]) as z.ZodType<T>,
});
const braid = <T>(schema: z.ZodType<T>): SchemaDef<T> => ({
  jsonSchema: z.toJSONSchema(schema),
  validator: schema,
});

export const SCHEMAS = {
  'foxglove.RawAudio': foxglove<RawAudioMessage>(RawAudio),
  'foxglove.RawImage': foxglove<RawImageMessage>(RawImage),
  'foxglove.CompressedImage': foxglove<CompressedImageMessage>(CompressedImage),
  'foxglove.Log': foxglove<LogMessage>(Log),
  'braid.Text': braid(textMessage),
  'braid.Labels': braid(labelsMessage),
  'braid.Prediction': braid(predictionMessage),
  'braid.LabelEvent': braid(labelEventMessage),
} as const;

export type SchemaName = keyof typeof SCHEMAS;
export type MessageOf<S extends SchemaName> = (typeof SCHEMAS)[S] extends SchemaDef<infer T> ? T : never;

export const isSchemaName = (name: string): name is SchemaName => Object.hasOwn(SCHEMAS, name);

/** The bytes of an MCAP Schema record's `data` for a JSON schema (`jsonschema` encoding). */
export const schemaData = (name: SchemaName): Uint8Array =>
  new TextEncoder().encode(JSON.stringify(SCHEMAS[name].jsonSchema));

/** Which modality each schema can carry as events; foxglove.Log carries text (in files of other tools). */
export const SCHEMA_MODALITY: Readonly<Partial<Record<SchemaName, Modality>>> = {
  'foxglove.RawAudio': 'audio',
  'foxglove.RawImage': 'video',
  'foxglove.CompressedImage': 'video',
  'foxglove.Log': 'text',
  'braid.Text': 'text',
  'braid.Labels': 'label',
};
