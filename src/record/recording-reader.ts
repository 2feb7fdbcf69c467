import { hasMcapPrefix, MCAP_MAGIC } from '@mcap/core';
import { InvalidOptionError } from '../core/errors.js';
import { type AnySourceEvent, isModality, type Modality, validateEvent } from '../core/events.js';
import type { Micros } from '../core/time.js';
import type { Prediction } from '../core/window.js';
import { decodeEvent, decodePrediction, nanosToMicros, SCHEMA_MODALITY } from './codec.js';
import { causeText, RecordingError, type RecordingWarning, type WarningListener } from './errors.js';
import { FileReadable } from './file-io.js';
import { openIndexedSource } from './indexed-source.js';
import type { RawMessage } from './message-order.js';
import type { McapChannel, McapSchema, MessageQuery, MessageSource } from './message-source.js';
import {
  CHANNEL_KEY,
  type ChannelKind,
  isSchemaName,
  MESSAGE_ENCODING,
  SCHEMA_ENCODING,
  type SchemaName,
} from './schemas.js';
import { openStreamSource } from './stream-source.js';
import { loadZstd } from './zstd.js';

export interface StreamInfo {
  readonly streamId: string;
  readonly modalities: readonly Modality[];
  /** Messages per modality in the file. */
  readonly messages: Readonly<Partial<Record<Modality, number>>>;
  readonly predictions: number;
}

export interface ChannelInfo {
  readonly id: number;
  readonly topic: string;
  readonly schema: string;
  readonly messageEncoding: string;
  readonly messages: number;
  readonly streamId?: string;
  readonly kind?: ChannelKind;
  readonly modality?: Modality;
  /** Why braid does not read this channel; absent for braid channels. */
  readonly skipped?: string;
}

/** What `braid info` shows about a recording. Times are µs of originating time; `duration` is end − start. */
export interface RecordingInfo {
  readonly path: string;
  /** The file had a valid summary and footer; false for a recording cut short (see `warnings`). */
  readonly complete: boolean;
  readonly profile: string;
  readonly library: string;
  /** The `braid` metadata record (formatVersion and whatever the recorder was given). */
  readonly metadata: Readonly<Record<string, string>>;
  readonly startTime: Micros | undefined;
  readonly endTime: Micros | undefined;
  readonly duration: Micros;
  readonly messages: number;
  readonly streams: readonly StreamInfo[];
  readonly channels: readonly ChannelInfo[];
  readonly schemas: readonly string[];
  readonly warnings: readonly RecordingWarning[];
}

export interface OpenOptions {
  /** Where warnings go (truncation, skipped channels, bad messages); default: process.emitWarning. */
  readonly onWarning?: WarningListener;
}

/**
 * Which events to read. `from`/`to` are µs relative to the recording's first message (of any channel), a
 * half-open range [from, to); `streams` keeps only these stream ids.
 */
export interface EventQuery {
  readonly from?: Micros;
  readonly to?: Micros;
  readonly streams?: readonly string[];
}

export type ReadOptions = OpenOptions & EventQuery;

type BraidChannel =
  | {
      readonly kind: 'event';
      readonly streamId: string;
      readonly modality: Modality;
      readonly schema: SchemaName;
    }
  | { readonly kind: 'prediction'; readonly streamId: string; readonly schema: SchemaName };

/** Bad messages reported per channel before the rest are only counted. */
const REPORTED_BAD_MESSAGES = 5;

/** A braid channel, or the reason it is not one. */
function classify(channel: McapChannel, schema: McapSchema | undefined): BraidChannel | string {
  if (!schema) return 'it has no schema';
  if (channel.messageEncoding !== MESSAGE_ENCODING)
    return `its message encoding is "${channel.messageEncoding}", braid reads "${MESSAGE_ENCODING}"`;
  if (schema.encoding !== SCHEMA_ENCODING)
    return `its schema encoding is "${schema.encoding}", braid reads "${SCHEMA_ENCODING}"`;
  if (!isSchemaName(schema.name)) return `schema "${schema.name}" is not one braid reads`;
  const streamId = channel.metadata.get(CHANNEL_KEY.streamId);
  if (!streamId) return `it has no "${CHANNEL_KEY.streamId}" metadata`;
  const kind = channel.metadata.get(CHANNEL_KEY.kind);
  if (kind === 'prediction')
    return schema.name === 'braid.Prediction'
      ? { kind, streamId, schema: schema.name }
      : `a prediction channel needs schema braid.Prediction, not ${schema.name}`;
  if (kind !== 'event')
    return `its "${CHANNEL_KEY.kind}" metadata is ${JSON.stringify(kind)}, not event|prediction`;
  const modality = channel.metadata.get(CHANNEL_KEY.modality);
  if (!isModality(modality)) return `its "${CHANNEL_KEY.modality}" metadata is ${JSON.stringify(modality)}`;
  if (SCHEMA_MODALITY[schema.name] !== modality)
    return `schema ${schema.name} cannot carry ${modality} events`;
  return { kind, streamId, modality, schema: schema.name };
}

const hex = (bytes: ArrayLike<number>): string =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');

async function openSource(path: string, readable: FileReadable): Promise<MessageSource> {
  const size = await readable.size();
  const head = await readable.read(0n, size < 8n ? size : 8n);
  if (!hasMcapPrefix(new DataView(head.buffer, head.byteOffset, head.byteLength)))
    throw new RecordingError(
      path,
      `not an MCAP file: expected it to start with the magic bytes ${hex(MCAP_MAGIC)}, found ${
        head.byteLength === 0 ? 'an empty file' : hex(head)
      }`,
    );
  const { decompressHandlers } = await loadZstd();
  try {
    return await openIndexedSource(readable, decompressHandlers);
  } catch (error) {
    return await openStreamSource(readable, decompressHandlers, causeText(error));
  }
}

const defaultWarning: WarningListener = (w) =>
  process.emitWarning(w.message, { type: 'BraidRecordingWarning', code: w.code });

function checkTime(option: 'from' | 'to', value: Micros | undefined): void {
  if (value !== undefined && (!Number.isSafeInteger(value) || value < 0))
    throw new InvalidOptionError(
      option,
      `must be whole non-negative µs from the recording's start, got ${value}`,
    );
}

/**
 * An open recording: its {@link RecordingInfo}, its events in (log time, channel, sequence) order and its
 * predictions. A finished file is read through its index (seeking to `from`); a file cut short is read record
 * by record up to its last complete chunk, with a `truncated` warning saying how far it got.
 */
export class RecordingReader {
  readonly #channels = new Map<number, BraidChannel>();
  readonly #badByChannel = new Map<number, number>();
  readonly #onWarning: WarningListener;
  #badMessages = 0;

  private constructor(
    readonly path: string,
    private readonly readable: FileReadable,
    private readonly source: MessageSource,
    readonly info: RecordingInfo,
    channels: ReadonlyMap<number, BraidChannel>,
    onWarning: WarningListener,
  ) {
    for (const [id, c] of channels) this.#channels.set(id, c);
    this.#onWarning = onWarning;
  }

  /** Opens a recording; throws a RecordingError when it cannot be read at all (missing, not MCAP). */
  static async open(path: string, options: OpenOptions = {}): Promise<RecordingReader> {
    let readable: FileReadable;
    try {
      readable = await FileReadable.open(path);
    } catch (error) {
      throw new RecordingError(path, `cannot open the recording: ${causeText(error)}`, { cause: error });
    }
    try {
      const source = await openSource(path, readable);
      const channels = new Map<number, BraidChannel>();
      const infos: ChannelInfo[] = [];
      const warnings = [...source.warnings];
      for (const channel of [...source.channels.values()].sort((a, b) => a.id - b.id)) {
        const schema = source.schemas.get(channel.schemaId);
        const braid = classify(channel, schema);
        const messages = source.messageCounts.get(channel.id) ?? 0;
        const base = {
          id: channel.id,
          topic: channel.topic,
          schema: schema?.name ?? '',
          messageEncoding: channel.messageEncoding,
          messages,
        };
        if (typeof braid === 'string') {
          infos.push({ ...base, skipped: braid });
          warnings.push({
            code: 'unknown_channel',
            channelId: channel.id,
            message: `skipping channel ${channel.id} (${channel.topic}, ${messages} messages): ${braid}`,
          });
        } else {
          channels.set(channel.id, braid);
          infos.push({ ...base, ...braid });
        }
      }
      const info = summarise(path, source, infos, warnings);
      const onWarning = options.onWarning ?? defaultWarning;
      for (const w of warnings) onWarning(w);
      return new RecordingReader(path, readable, source, info, channels, onWarning);
    } catch (error) {
      await readable.close();
      if (error instanceof RecordingError) throw error;
      throw new RecordingError(path, `cannot read the recording: ${causeText(error)}`, { cause: error });
    }
  }

  /** Messages skipped because they did not decode or validate (each reported as a `bad_message` warning). */
  get badMessages(): number {
    return this.#badMessages;
  }

  /** Events in (log time, channel, sequence) order; invalid messages are skipped with a warning. */
  async *events(query: EventQuery = {}): AsyncGenerator<AnySourceEvent> {
    const range = this.#range(query);
    if (!range) return;
    const streams = this.#streamFilter(query.streams);
    const ids = new Set<number>();
    for (const [id, c] of this.#channels) if (c.kind === 'event' && streams(c.streamId)) ids.add(id);
    for await (const m of this.#messages({ ...range, channelIds: ids })) {
      const channel = this.#channels.get(m.channelId)!;
      if (channel.kind !== 'event') continue;
      try {
        yield validateEvent(
          decodeEvent(channel.schema, channel, nanosToMicros(m.logTime), m.sequence, m.data),
        );
      } catch (error) {
        this.#bad(m, error);
      }
    }
  }

  /** Predictions in (window end, channel, sequence) order. */
  async *predictions(query: Pick<EventQuery, 'streams'> = {}): AsyncGenerator<Prediction> {
    const streams = this.#streamFilter(query.streams);
    const ids = new Set<number>();
    for (const [id, c] of this.#channels) if (c.kind === 'prediction' && streams(c.streamId)) ids.add(id);
    for await (const m of this.#messages({ channelIds: ids })) {
      try {
        yield decodePrediction(m.data);
      } catch (error) {
        this.#bad(m, error);
      }
    }
  }

  close(): Promise<void> {
    return this.readable.close();
  }

  async *#messages(query: MessageQuery): AsyncGenerator<RawMessage> {
    let read = 0;
    let last: bigint | undefined;
    try {
      for await (const m of this.source.messages(query)) {
        read += 1;
        last = m.logTime;
        yield m;
      }
    } catch (error) {
      const where =
        last === undefined
          ? 'before the first message'
          : `after ${read} messages, past log time ${last / 1000n} µs`;
      throw new RecordingError(
        this.path,
        `reading messages failed ${where} (damaged file?): ${causeText(error)}`,
        {
          cause: error,
        },
      );
    }
  }

  #bad(m: RawMessage, error: unknown): void {
    this.#badMessages += 1;
    const n = (this.#badByChannel.get(m.channelId) ?? 0) + 1;
    this.#badByChannel.set(m.channelId, n);
    if (n > REPORTED_BAD_MESSAGES) return;
    const more =
      n === REPORTED_BAD_MESSAGES ? ' (further bad messages on this channel are only counted)' : '';
    const topic = this.source.channels.get(m.channelId)?.topic;
    this.#onWarning({
      code: 'bad_message',
      channelId: m.channelId,
      message: `skipping message ${m.sequence} of ${topic} at log time ${m.logTime} ns: ${causeText(error)}${more}`,
    });
  }

  #streamFilter(streams: readonly string[] | undefined): (id: string) => boolean {
    if (!streams) return () => true;
    const known = new Set(this.info.streams.map((s) => s.streamId));
    const missing = streams.filter((s) => !known.has(s));
    if (missing.length > 0)
      throw new RecordingError(
        this.path,
        `no stream ${missing.map((s) => JSON.stringify(s)).join(', ')} in this recording; it has ${
          [...known].map((s) => JSON.stringify(s)).join(', ') || 'none'
        }`,
      );
    const wanted = new Set(streams);
    return (id) => wanted.has(id);
  }

  /** The query's [from, to) as inclusive MCAP log times; undefined when there is nothing to read. */
  #range(query: EventQuery): { start?: bigint; end?: bigint } | undefined {
    const { from, to } = query;
    checkTime('from', from);
    checkTime('to', to);
    if (from !== undefined && to !== undefined && to <= from)
      throw new InvalidOptionError('to', `must be after from (${from} µs), got ${to} µs`);
    const first = this.source.startTime;
    if (first === undefined) {
      if ((from ?? 0) > 0)
        throw new RecordingError(
          this.path,
          `from ${from} µs is past the end: the recording holds no messages`,
        );
      return undefined;
    }
    if (from !== undefined && from > this.info.duration)
      throw new RecordingError(
        this.path,
        `from ${from} µs is past the end of the recording, which lasts ${this.info.duration} µs`,
      );
    return {
      ...(from !== undefined && { start: first + BigInt(from) * 1000n }),
      ...(to !== undefined && { end: first + BigInt(to) * 1000n - 1n }),
    };
  }
}

function summarise(
  path: string,
  source: MessageSource,
  channels: readonly ChannelInfo[],
  warnings: readonly RecordingWarning[],
): RecordingInfo {
  const streams = new Map<string, { messages: Partial<Record<Modality, number>>; predictions: number }>();
  for (const c of channels) {
    if (c.streamId === undefined) continue;
    const s = streams.get(c.streamId) ?? { messages: {}, predictions: 0 };
    streams.set(c.streamId, s);
    if (c.kind === 'prediction') s.predictions += c.messages;
    else if (c.modality) s.messages[c.modality] = (s.messages[c.modality] ?? 0) + c.messages;
  }
  const startTime = source.startTime === undefined ? undefined : Number(source.startTime / 1000n);
  const endTime = source.endTime === undefined ? undefined : Number(source.endTime / 1000n);
  return {
    path,
    complete: source.complete,
    profile: source.profile,
    library: source.library,
    metadata: Object.fromEntries(source.metadata),
    startTime,
    endTime,
    duration: startTime === undefined || endTime === undefined ? 0 : endTime - startTime,
    messages: [...source.messageCounts.values()].reduce((a, b) => a + b, 0),
    streams: [...streams.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([streamId, s]) => ({
        streamId,
        modalities: (Object.keys(s.messages) as Modality[]).sort(),
        messages: s.messages,
        predictions: s.predictions,
      })),
    channels,
    schemas: [...new Set(channels.map((c) => c.schema).filter((s) => s !== ''))].sort(),
    warnings,
  };
}

/** Reads a recording's events (see {@link EventQuery}), closing the file when iteration ends. */
export async function* readRecording(
  path: string,
  options: ReadOptions = {},
): AsyncGenerator<AnySourceEvent> {
  const reader = await RecordingReader.open(path, options);
  try {
    yield* reader.events(options);
  } finally {
    await reader.close();
  }
}

/** Reads a recording's predictions in window-end order, closing the file when iteration ends. */
export async function* readPredictions(
  path: string,
  options: OpenOptions & Pick<EventQuery, 'streams'> = {},
): AsyncGenerator<Prediction> {
  const reader = await RecordingReader.open(path, options);
  try {
    yield* reader.predictions(options);
  } finally {
    await reader.close();
  }
}

/** Streams, modalities, message counts, times and schemas of a recording, for `braid info`. */
export async function recordingInfo(path: string, options: OpenOptions = {}): Promise<RecordingInfo> {
  const reader = await RecordingReader.open(path, options);
  await reader.close();
  return reader.info;
}
