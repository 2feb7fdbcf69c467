import { hasMcapPrefix, MCAP_MAGIC } from '@mcap/core';
import { InvalidOptionError } from '../core/errors.js';
import { type AnySourceEvent, type Modality, validateEvent } from '../core/events.js';
import type { Micros } from '../core/time.js';
import type { Prediction } from '../core/window.js';
import type { LabelEvent } from '../events/event-tracker.js';
import {
  type ChannelOrigin,
  classifyChannel,
  MappingError,
  type ReadChannel,
  type TopicMapping,
} from './channel-map.js';
import {
  ByteArena,
  type DecodedMessage,
  decodeEvent,
  decodeLabelEvent,
  decodePrediction,
  nanosToMicros,
  nanosToMicrosFloor,
} from './codec.js';
import { loadDecompress } from './decompress.js';
import { causeText, RecordingError, type RecordingWarning, type WarningListener } from './errors.js';
import { FileReadable } from './file-io.js';
import { IndexedMessagesError, openIndexedSource } from './indexed-source.js';
import type { MessageDecoder } from './message-decoder.js';
import type { RawMessage } from './message-order.js';
import type { MessageQuery, MessageSource } from './message-source.js';
import type { ChannelKind } from './schemas.js';
import { openStreamSource } from './stream-source.js';

export interface StreamInfo {
  readonly streamId: string;
  readonly modalities: readonly Modality[];
  /** Messages per modality in the file. */
  readonly messages: Readonly<Partial<Record<Modality, number>>>;
  readonly predictions: number;
  /** Label on/off events recorded for it (docs/events.md). */
  readonly labelEvents: number;
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
  /** How braid knows what the channel holds (braid metadata, --map, or a Foxglove schema); absent when skipped. */
  readonly origin?: ChannelOrigin;
  /** The model that made a prediction channel's predictions (format version 2). */
  readonly model?: string;
  /** Why braid does not read this channel; absent for the channels it reads. */
  readonly skipped?: string;
}

/** A recorded prediction, with the model that made it when the file says (format version 2). */
export type RecordedPrediction = Prediction & { readonly model?: string };
/** A recorded label on/off event, with the model whose predictions made it when the file says. */
export type RecordedLabelEvent = LabelEvent & { readonly model?: string };

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
  /**
   * Topics to read as a stream's events of a modality (`braid replay --map TOPIC=STREAM:MODALITY`), over what the
   * channel metadata says or what would be inferred; every topic named must be in the file.
   */
  readonly map?: readonly TopicMapping[];
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

/** Bad messages reported per channel before the rest are only counted. */
const REPORTED_BAD_MESSAGES = 5;

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
  const decompressHandlers = await loadDecompress();
  try {
    return await openIndexedSource(readable, decompressHandlers);
  } catch (error) {
    if (error instanceof IndexedMessagesError)
      throw new RecordingError(path, `${error.message} (damaged file?): ${causeText(error.cause)}`, {
        cause: error.cause,
      });
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
  readonly #channels = new Map<number, ReadChannel>();
  readonly #badByChannel = new Map<number, number>();
  readonly #onWarning: WarningListener;
  #badMessages = 0;

  private constructor(
    readonly path: string,
    private readonly readable: FileReadable,
    private readonly source: MessageSource,
    readonly info: RecordingInfo,
    channels: ReadonlyMap<number, ReadChannel>,
    onWarning: WarningListener,
  ) {
    for (const [id, c] of channels) this.#channels.set(id, c);
    this.#onWarning = onWarning;
  }

  /** Opens a recording; throws a RecordingError when it cannot be read at all (missing, not MCAP). */
  static async open(path: string, options: OpenOptions = {}): Promise<RecordingReader> {
    const mapped = new Map<string, string>();
    for (const m of options.map ?? []) {
      const text = `${m.topic}=${m.streamId}:${m.modality}`;
      const before = mapped.get(m.topic);
      if (before !== undefined && before !== text)
        throw new InvalidOptionError(
          'map',
          `maps topic ${m.topic} twice (${before}, ${text}): one reading a topic`,
        );
      mapped.set(m.topic, text);
    }
    let readable: FileReadable;
    try {
      readable = await FileReadable.open(path);
    } catch (error) {
      throw new RecordingError(path, `cannot open the recording: ${causeText(error)}`, { cause: error });
    }
    try {
      const source = await openSource(path, readable);
      const channels = new Map<number, ReadChannel>();
      const infos: ChannelInfo[] = [];
      const warnings = [...source.warnings];
      const mappings = new Map((options.map ?? []).map((m) => [m.topic, m]));
      const decoders = new Map<number, MessageDecoder>();
      const sorted = [...source.channels.values()].sort((a, b) => a.id - b.id);
      const missing = [...mappings.keys()].filter((t) => !sorted.some((c) => c.topic === t));
      if (missing.length > 0)
        throw new RecordingError(
          path,
          `--map names ${missing.map((t) => JSON.stringify(t)).join(', ')}, not a topic of this recording; its topics are ${[...new Set(sorted.map((c) => JSON.stringify(c.topic)))].join(', ') || 'none'}`,
        );
      for (const channel of sorted) {
        const schema = source.schemas.get(channel.schemaId);
        let read: ReturnType<typeof classifyChannel>;
        try {
          read = classifyChannel(channel, schema, mappings.get(channel.topic), decoders);
        } catch (error) {
          if (error instanceof MappingError) throw new RecordingError(path, error.message);
          throw error;
        }
        const messages = source.messageCounts.get(channel.id) ?? 0;
        const base = {
          id: channel.id,
          topic: channel.topic,
          schema: schema?.name ?? '',
          messageEncoding: channel.messageEncoding,
          messages,
        };
        if ('skipped' in read) {
          infos.push({ ...base, skipped: read.skipped });
          if (!read.quiet)
            warnings.push({
              code: 'unknown_channel',
              channelId: channel.id,
              message: `skipping channel ${channel.id} (${channel.topic}, ${messages} messages): ${read.skipped}`,
            });
        } else {
          channels.set(channel.id, read);
          const { decode: _decode, schema: _schema, ...shown } = read;
          infos.push({ ...base, ...shown });
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
    for await (const batch of this.eventBatches(query)) for (const event of batch) yield event;
  }

  /**
   * The same events as {@link events}, a few hundred at a time: a consumer that awaits once per batch (a replay)
   * reads about as fast as the raw MCAP read allows.
   */
  async *eventBatches(query: EventQuery = {}): AsyncGenerator<AnySourceEvent[]> {
    const range = this.#range(query);
    if (!range) return;
    const streams = this.#streamFilter(query.streams);
    const ids = new Set<number>();
    for (const [id, c] of this.#channels) if (c.kind === 'event' && streams(c.streamId)) ids.add(id);
    for await (const messages of this.#messages({ ...range, channelIds: ids })) {
      const events: AnySourceEvent[] = [];
      const arena = new ByteArena();
      let channelId = -1;
      let channel: ReadChannel | undefined;
      for (const m of messages) {
        // Consecutive messages mostly share a channel (a chunk holds runs of one stream's audio).
        if (m.channelId !== channelId) {
          channelId = m.channelId;
          channel = this.#channels.get(channelId);
        }
        if (channel?.kind !== 'event') continue;
        try {
          // braid writes whole µs, so a remainder in its own channels means damage; other tools' clocks are finer.
          const time = channel.origin === 'braid' ? nanosToMicros(m.logTime) : nanosToMicrosFloor(m.logTime);
          events.push(
            validateEvent(
              decodeEvent(channel.schema, channel, time, m.sequence, channel.decode(m.data), arena),
            ),
          );
        } catch (error) {
          this.#bad(m, error);
        }
      }
      if (events.length > 0) yield events;
    }
  }

  /**
   * Per stream with event channels, a time (µs, absolute) none of its events is later than: a replay closes the
   * stream once it has read past it (see MessageSource.channelEnds for how tight it is).
   */
  streamEnds(): Map<string, Micros> {
    const ends = new Map<string, Micros>();
    for (const [id, c] of this.#channels) {
      if (c.kind !== 'event') continue;
      const ns = this.source.channelEnds.get(id) ?? this.source.endTime;
      if (ns === undefined) continue;
      const us = Number((ns + 999n) / 1000n);
      ends.set(c.streamId, Math.max(ends.get(c.streamId) ?? us, us));
    }
    return ends;
  }

  /** Predictions in (window end, channel, sequence) order, with their model when the file names it. */
  predictions(query: Pick<EventQuery, 'streams'> = {}): AsyncGenerator<RecordedPrediction> {
    return this.#modelOutputs('prediction', query, (m) => {
      const { prediction, model } = decodePrediction(m);
      return { item: prediction, model };
    });
  }

  /** Label on/off events in (time, channel, sequence) order, with their model when the file names it. */
  labelEvents(query: Pick<EventQuery, 'streams'> = {}): AsyncGenerator<RecordedLabelEvent> {
    return this.#modelOutputs('label_event', query, (m) => {
      const { event, model } = decodeLabelEvent(m);
      return { item: event, model };
    });
  }

  /** The messages of the streams' `kind` channels decoded, with the model named in them or else by the channel. */
  async *#modelOutputs<T extends object>(
    kind: 'prediction' | 'label_event',
    query: Pick<EventQuery, 'streams'>,
    decode: (m: DecodedMessage) => { item: T; model?: string },
  ): AsyncGenerator<T & { readonly model?: string }> {
    const streams = this.#streamFilter(query.streams);
    const ids = new Set<number>();
    for (const [id, c] of this.#channels) if (c.kind === kind && streams(c.streamId)) ids.add(id);
    if (ids.size === 0) return;
    for await (const messages of this.#messages({ channelIds: ids }))
      for (const m of messages) {
        const channel = this.#channels.get(m.channelId)!;
        try {
          const { item, model } = decode(channel.decode(m.data));
          const named = model ?? (channel.kind === kind ? channel.model : undefined);
          yield named === undefined ? item : { ...item, model: named };
        } catch (error) {
          this.#bad(m, error);
        }
      }
  }

  close(): Promise<void> {
    return this.readable.close();
  }

  async *#messages(query: MessageQuery): AsyncGenerator<RawMessage[]> {
    let read = 0;
    let last: bigint | undefined;
    const badBefore = new Map(this.#badByChannel);
    try {
      for await (const batch of this.source.messages(query)) {
        read += batch.length;
        last = batch[batch.length - 1]?.logTime ?? last;
        yield batch;
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
    } finally {
      this.#reportUnwarned(badBefore);
    }
  }

  /** After a pass: one warning per channel for its bad messages past those warned of one by one, so none goes untold. */
  #reportUnwarned(before: ReadonlyMap<number, number>): void {
    for (const [channelId, n] of this.#badByChannel) {
      const unwarned = n - Math.max(REPORTED_BAD_MESSAGES, before.get(channelId) ?? 0);
      if (unwarned <= 0) continue;
      const topic = this.source.channels.get(channelId)?.topic;
      this.#onWarning({
        code: 'bad_message',
        channelId,
        message: `skipped ${unwarned} more bad messages of ${topic}, not reported one by one (${n} bad on this channel in all)`,
      });
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
    if (to !== undefined && to <= (from ?? 0))
      throw new InvalidOptionError(
        'to',
        from !== undefined
          ? `must be after from (${from} µs), got ${to} µs`
          : `must be after the recording's start (0 µs), got ${to} µs`,
      );
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
  const streams = new Map<
    string,
    { messages: Partial<Record<Modality, number>>; predictions: number; labelEvents: number }
  >();
  for (const c of channels) {
    if (c.streamId === undefined) continue;
    const s = streams.get(c.streamId) ?? { messages: {}, predictions: 0, labelEvents: 0 };
    streams.set(c.streamId, s);
    if (c.kind === 'prediction') s.predictions += c.messages;
    else if (c.kind === 'label_event') s.labelEvents += c.messages;
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
        // In name order, as modalities: the channels' order is the order their first messages arrived in.
        messages: Object.fromEntries(Object.entries(s.messages).sort(([a], [b]) => (a < b ? -1 : 1))),
        predictions: s.predictions,
        labelEvents: s.labelEvents,
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
    for await (const batch of reader.eventBatches(options)) for (const event of batch) yield event;
  } finally {
    await reader.close();
  }
}

/** Reads a recording's predictions in window-end order, closing the file when iteration ends. */
export async function* readPredictions(
  path: string,
  options: OpenOptions & Pick<EventQuery, 'streams'> = {},
): AsyncGenerator<RecordedPrediction> {
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
