import { isModality, type Modality } from '../core/events.js';
import { type MessageDecoder, messageDecoder } from './message-decoder.js';
import type { McapChannel, McapSchema } from './message-source.js';
import { CHANNEL_KEY, isSchemaName, SCHEMA_MODALITY, type SchemaName } from './schemas.js';

/** `--map TOPIC=STREAM:MODALITY`: read a topic as this stream's events of this modality. */
export interface TopicMapping {
  readonly topic: string;
  readonly streamId: string;
  readonly modality: Modality;
}

/**
 * Where a channel's reading came from: `braid` (its braid.* channel metadata), `map` (a TopicMapping) or `inferred`
 * (a Foxglove schema in another tool's file: modality from the schema, stream from the topic).
 */
export type ChannelOrigin = 'braid' | 'map' | 'inferred';

export type ReadChannel =
  | {
      readonly kind: 'event';
      readonly streamId: string;
      readonly modality: Modality;
      readonly schema: SchemaName;
      readonly origin: ChannelOrigin;
      readonly decode: MessageDecoder;
    }
  | {
      readonly kind: 'prediction' | 'label_event';
      readonly streamId: string;
      readonly schema: SchemaName;
      readonly origin: ChannelOrigin;
      readonly model?: string;
      readonly decode: MessageDecoder;
    };

/** A channel not read: why, and whether to warn (braid's own foxglove.Log views are skipped quietly). */
export interface SkippedChannel {
  readonly skipped: string;
  readonly quiet: boolean;
}

/** A mapping that cannot be applied: the caller asked for it, so it is an error, not a skipped channel. */
export class MappingError extends Error {}

/**
 * The stream a topic of another tool's file stands for: the topic without its leading slash and its last segment
 * (`/robot1/camera/image` → `robot1/camera`, `/cam1/audio` → `cam1`), or the topic itself when it has one segment
 * (`/camera` → `camera`). Topics that should share a stream but do not share a prefix need `--map`.
 */
export function streamIdFromTopic(topic: string): string {
  const parts = topic.split('/').filter((p) => p !== '');
  if (parts.length === 0) return topic || 'default';
  return parts.length === 1 ? (parts[0] as string) : parts.slice(0, -1).join('/');
}

/**
 * How braid reads a channel: from braid's channel metadata, from a `--map` entry (which wins), or — for a channel
 * of another tool with a schema braid knows (foxglove.RawAudio, RawImage, CompressedImage, Log) — by inference.
 * Returns the reason when it is not read; throws a MappingError when a mapping names a schema that cannot carry
 * its modality.
 */
export function classifyChannel(
  channel: McapChannel,
  schema: McapSchema | undefined,
  mapping: TopicMapping | undefined,
  decoders: Map<number, MessageDecoder>,
): ReadChannel | SkippedChannel {
  const skip = (skipped: string, quiet = false): SkippedChannel => ({ skipped, quiet });
  if (!schema) {
    if (mapping) throw new MappingError(`--map ${channel.topic}: the channel has no schema to read it with`);
    return skip('it has no schema');
  }
  if (!isSchemaName(schema.name)) {
    if (mapping)
      throw new MappingError(`--map ${channel.topic}: schema "${schema.name}" is not one braid reads`);
    return skip(`schema "${schema.name}" is not one braid reads`);
  }
  const name = schema.name;
  const decoderOr = () => messageDecoder(name, channel, schema, decoders);
  if (mapping) {
    if (SCHEMA_MODALITY[name] !== mapping.modality)
      throw new MappingError(
        `--map ${channel.topic}=${mapping.streamId}:${mapping.modality}: schema ${name} cannot carry ${mapping.modality} events`,
      );
    const decode = decoderOr();
    if (typeof decode === 'string') throw new MappingError(`--map ${channel.topic}: ${decode}`);
    return {
      kind: 'event',
      streamId: mapping.streamId,
      modality: mapping.modality,
      schema: name,
      origin: 'map',
      decode,
    };
  }
  const streamId = channel.metadata.get(CHANNEL_KEY.streamId);
  if (!streamId) {
    // Only Foxglove's schemas say what a channel of another tool holds; braid's own need braid's metadata.
    const modality = name.startsWith('foxglove.') ? SCHEMA_MODALITY[name] : undefined;
    if (modality === undefined) return skip(`it has no "${CHANNEL_KEY.streamId}" metadata`);
    const decode = decoderOr();
    if (typeof decode === 'string') return skip(decode);
    return {
      kind: 'event',
      streamId: streamIdFromTopic(channel.topic),
      modality,
      schema: name,
      origin: 'inferred',
      decode,
    };
  }
  const kind = channel.metadata.get(CHANNEL_KEY.kind);
  if (kind === 'view') return skip(`a ${name} view of the stream's text, for Foxglove`, true);
  if (kind === 'prediction') {
    if (name !== 'braid.Prediction')
      return skip(`a prediction channel needs schema braid.Prediction, not ${name}`);
    const decode = decoderOr();
    if (typeof decode === 'string') return skip(decode);
    const model = channel.metadata.get(CHANNEL_KEY.model);
    return { kind, streamId, schema: name, origin: 'braid', decode, ...(model !== undefined && { model }) };
  }
  if (kind === 'label_event') {
    if (name !== 'braid.LabelEvent')
      return skip(`a label event channel needs schema braid.LabelEvent, not ${name}`);
    const decode = decoderOr();
    if (typeof decode === 'string') return skip(decode);
    const model = channel.metadata.get(CHANNEL_KEY.model);
    return { kind, streamId, schema: name, origin: 'braid', decode, ...(model !== undefined && { model }) };
  }
  if (kind !== 'event')
    return skip(
      `its "${CHANNEL_KEY.kind}" metadata is ${JSON.stringify(kind)}, not event|prediction|label_event|view`,
    );
  const modality = channel.metadata.get(CHANNEL_KEY.modality);
  if (!isModality(modality))
    return skip(`its "${CHANNEL_KEY.modality}" metadata is ${JSON.stringify(modality)}`);
  if (SCHEMA_MODALITY[name] !== modality) return skip(`schema ${name} cannot carry ${modality} events`);
  const decode = decoderOr();
  if (typeof decode === 'string') return skip(decode);
  return { kind, streamId, modality, schema: name, origin: 'braid', decode };
}

/** Parses `TOPIC=STREAM:MODALITY`; the topic may hold `=` and `:`, so the last ones split. */
export function parseTopicMapping(text: string): TopicMapping {
  const eq = text.lastIndexOf('=');
  const colon = text.lastIndexOf(':');
  const topic = text.slice(0, eq);
  const streamId = text.slice(eq + 1, colon);
  const modality = text.slice(colon + 1);
  if (eq <= 0 || colon < eq + 2 || !isModality(modality))
    throw new TypeError(
      `--map expects TOPIC=STREAM:MODALITY with MODALITY one of audio, video, text, label, got "${text}"`,
    );
  return { topic, streamId, modality };
}
