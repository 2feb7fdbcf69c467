import { LIBRARY_IDENTIFIER, McapWriter } from '@mcap/core';
import { InvalidEventError, InvalidOptionError } from '../core/errors.js';
import {
  type AnySourceEvent,
  DEFAULT_EVENT_LIMITS,
  type EventLimits,
  type Modality,
  validateEvent,
} from '../core/events.js';
import { type Micros, wallClockMicros } from '../core/time.js';
import type { Prediction } from '../core/window.js';
import type { LabelEvent } from '../events/event-tracker.js';
import {
  type EncodedMessage,
  encodeEvent,
  encodeLabelEvent,
  encodeLogView,
  encodePrediction,
  microsToNanos,
} from './codec.js';
import { causeText, RecordingError, WriteBacklogError } from './errors.js';
import { FileWritable } from './file-io.js';
import { protoSchema } from './proto-schemas.js';
import {
  CHANNEL_KEY,
  type ChannelKind,
  FORMAT_VERSION,
  METADATA_NAME,
  type MessageEncoding,
  PROFILE,
  SCHEMA_ENCODING,
  type SchemaName,
  schemaData,
  topicFor,
} from './schemas.js';
import { loadZstd } from './zstd.js';

export interface RecorderOptions {
  /**
   * Uncompressed bytes a chunk collects before it is compressed and written (default 1 MiB). Only whole chunks
   * reach the disk, so this bounds what a crash can lose; smaller chunks compress a little worse.
   */
  readonly chunkBytes?: number;
  /** Chunk compression (default zstd). */
  readonly compression?: 'zstd' | 'none';
  /** zstd level 1..19 (default 3). */
  readonly zstdLevel?: number;
  /**
   * Message encoding (default `protobuf`: Foxglove's own protobuf schemas and braid's, about twice as fast to read
   * back as JSON); `json` writes JSON with base64 bytes, as format version 1 did.
   */
  readonly encoding?: MessageEncoding;
  /** Replace an existing file instead of failing (default false). */
  readonly overwrite?: boolean;
  /** Receive-time clock for writes that pass no receive time (default: the wall clock). */
  readonly clock?: () => Micros;
  readonly limits?: EventLimits;
  /** Extra key/values for the recording's `braid` metadata record (command line, model name...). */
  readonly metadata?: Readonly<Record<string, string>>;
  /**
   * Writes (events and predictions) queued at once before further ones are refused as `write_backlog` (default
   * 10 000): when the disk is slower than the events, memory stays bounded and the refusals are counted.
   */
  readonly maxPendingWrites?: number;
  /** Encoded bytes queued at once before further writes are refused as `write_backlog` (default 256 MiB). */
  readonly maxPendingBytes?: number;
}

export interface RecorderStats {
  /** Events written to the file (some may still sit in the open chunk until it fills or the file closes). */
  readonly events: number;
  readonly predictions: number;
  /** Label on/off events written (docs/events.md). */
  readonly labelEvents: number;
  /**
   * Events and predictions refused, by reason (`InvalidEventError.reason`, `bad_prediction`, `bad_receive_time`,
   * `write_backlog`, `recording_failed` for those offered after the file could no longer be written).
   */
  readonly rejected: Readonly<Record<string, number>>;
  /** Writes queued and not yet in the chunk. */
  readonly pendingWrites: number;
  readonly channels: number;
  /** Bytes handed to the file so far. */
  readonly bytesWritten: number;
}

/** MCAP message sequence numbers are uint32; seq beyond it cannot round-trip, so such events are refused. */
const MAX_SEQUENCE = 0xffff_ffff;
const DEFAULT_CHUNK_BYTES = 1024 * 1024;
const DEFAULT_MAX_PENDING_WRITES = 10_000;
const DEFAULT_MAX_PENDING_BYTES = 256 * 1024 * 1024;
/** Released channels kept for reuse: bounded, so a server seeing a new stream id per page load stays flat. */
const RETIRED_CHANNELS = 1024;

interface ChannelTarget {
  readonly kind: ChannelKind;
  readonly streamId: string;
  readonly modality?: Modality;
  readonly schema: SchemaName;
  /** Model that made a prediction channel's predictions. */
  readonly model?: string;
}

export interface PredictionWrite {
  /** Receive time (default: the recorder's clock). */
  readonly receiveTime?: Micros;
  /** Which model made it (e.g. `demo@1a2b3c4d5e6f`): saved in the message and the channel's metadata. */
  readonly model?: string;
}

function checkOptions(options: RecorderOptions): void {
  const { chunkBytes, zstdLevel, maxPendingWrites, maxPendingBytes } = options;
  for (const [name, value] of [
    ['maxPendingWrites', maxPendingWrites],
    ['maxPendingBytes', maxPendingBytes],
  ] as const)
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 1))
      throw new InvalidOptionError(name, `must be a positive integer, got ${value}`);
  if (chunkBytes !== undefined && (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1024))
    throw new InvalidOptionError('chunkBytes', `must be a whole number of bytes >= 1024, got ${chunkBytes}`);
  if (zstdLevel !== undefined && (!Number.isInteger(zstdLevel) || zstdLevel < 1 || zstdLevel > 19))
    throw new InvalidOptionError('zstdLevel', `must be an integer in 1..19, got ${zstdLevel}`);
}

/**
 * Writes source events (and optionally predictions) of any number of streams into one MCAP file: one channel per
 * stream × modality (× schema, should a stream switch between raw and compressed video), log time = originating
 * time, publish time = receive time, message sequence = event seq. Calls may overlap: writes are queued and run one
 * at a time, as McapWriter requires. `close()` finalises the file (summary, index, footer).
 */
export class McapRecorder {
  readonly #writer: McapWriter;
  readonly #file: FileWritable;
  readonly #clock: () => Micros;
  readonly #limits: EventLimits;
  readonly #channels = new Map<string, number>();
  /** Keys of #channels per stream, so a stream's channels can be forgotten when it closes. */
  readonly #streamChannels = new Map<string, Set<string>>();
  /** Channels of closed streams, newest last, kept (up to RETIRED_CHANNELS) so a stream that comes back reuses them. */
  readonly #retired = new Map<string, { id: number; seq: number }>();
  readonly #schemas = new Map<SchemaName, number>();
  readonly #encoding: MessageEncoding;
  readonly #predictionSeq = new Map<number, number>();
  readonly #rejected: Record<string, number> = {};
  readonly #maxPendingWrites: number;
  readonly #maxPendingBytes: number;
  #events = 0;
  #predictions = 0;
  #labelEvents = 0;
  #pendingWrites = 0;
  #pendingBytes = 0;
  #tail: Promise<void> = Promise.resolve();
  #failure: RecordingError | undefined;
  #closed: Promise<void> | undefined;

  private constructor(
    readonly path: string,
    writer: McapWriter,
    file: FileWritable,
    options: RecorderOptions,
  ) {
    this.#writer = writer;
    this.#file = file;
    this.#clock = options.clock ?? wallClockMicros;
    this.#limits = options.limits ?? DEFAULT_EVENT_LIMITS;
    this.#maxPendingWrites = options.maxPendingWrites ?? DEFAULT_MAX_PENDING_WRITES;
    this.#maxPendingBytes = options.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES;
    this.#encoding = options.encoding ?? 'protobuf';
  }

  /**
   * Creates the file and writes the MCAP header and the `braid` metadata record. If that fails, the partial file is
   * removed (a regular file only: a device or FIFO is left alone) and a RecordingError says why.
   */
  static async create(path: string, options: RecorderOptions = {}): Promise<McapRecorder> {
    checkOptions(options);
    let file: FileWritable;
    try {
      file = await FileWritable.open(path, options.overwrite ?? false);
    } catch (error) {
      const exists = (error as NodeJS.ErrnoException).code === 'EEXIST';
      throw new RecordingError(
        path,
        exists
          ? 'cannot create the recording: the file exists (--overwrite, or the option overwrite, replaces it)'
          : `cannot create the recording: ${causeText(error)}`,
        { cause: error },
      );
    }
    try {
      const zstd = options.compression === 'none' ? undefined : await loadZstd(options.zstdLevel);
      const writer = new McapWriter({
        writable: file,
        chunkSize: options.chunkBytes ?? DEFAULT_CHUNK_BYTES,
        ...(zstd && { compressChunk: zstd.compressChunk }),
      });
      await writer.start({ profile: PROFILE, library: `braid; ${LIBRARY_IDENTIFIER}` });
      await writer.addMetadata({
        name: METADATA_NAME,
        metadata: new Map(
          Object.entries({
            ...options.metadata,
            formatVersion: FORMAT_VERSION,
            encoding: options.encoding ?? 'protobuf',
          }),
        ),
      });
      return new McapRecorder(path, writer, file, options);
    } catch (error) {
      // No header, no recording: leave no partial file behind to be mistaken for one.
      await file.discard().catch(() => undefined);
      throw new RecordingError(path, `cannot start the recording: ${causeText(error)}`, { cause: error });
    }
  }

  /** True once a write failed: nothing more can be written, and close() will report the failure. */
  get failed(): boolean {
    return this.#failure !== undefined;
  }

  get stats(): RecorderStats {
    return {
      events: this.#events,
      predictions: this.#predictions,
      labelEvents: this.#labelEvents,
      rejected: { ...this.#rejected },
      channels: this.#channels.size,
      pendingWrites: this.#pendingWrites,
      bytesWritten: Number(this.#file.position()),
    };
  }

  /**
   * Queues one event. The promise settles once the event is in the current chunk; it rejects with an
   * InvalidEventError (counted in `stats.rejected`) for an invalid event, with a WriteBacklogError (counted as
   * `write_backlog`) when the queue is full, or with a RecordingError once the file cannot be written. Await it or attach a handler: an unhandled rejection ends a Node process.
   */
  write(event: AnySourceEvent, receiveTime?: Micros): Promise<void> {
    let valid: AnySourceEvent;
    let publishTime: bigint;
    let message: EncodedMessage;
    try {
      this.#checkOpen();
      valid = validateEvent(event, this.#limits);
      if (valid.seq > MAX_SEQUENCE)
        throw new InvalidEventError(
          'seq',
          'seq_too_large',
          `event.seq ${valid.seq} does not fit MCAP's uint32 sequence`,
        );
      publishTime = this.#publishTime(receiveTime);
      message = encodeEvent(valid, this.#encoding);
      this.#checkBacklog(message);
    } catch (error) {
      return this.#refuse(error);
    }
    const target = {
      kind: 'event',
      streamId: valid.streamId,
      modality: valid.modality,
      schema: message.schema,
    } as const;
    // Text also goes to the stream's foxglove.Log view, so Foxglove's Log panel shows it.
    const view = valid.modality === 'text' ? encodeLogView(valid, this.#encoding) : undefined;
    return this.#enqueue(message, async () => {
      const channelId = await this.#channelFor(target);
      const logTime = microsToNanos(valid.time);
      await this.#add(channelId, valid.seq, logTime, publishTime, message);
      if (view) {
        const viewId = await this.#channelFor({ ...target, kind: 'view', schema: view.schema });
        await this.#add(viewId, valid.seq, logTime, publishTime, view);
      }
      this.#events += 1;
    });
  }

  /**
   * Queues one prediction on the stream's `/<streamId>/prediction` channel (one channel per stream and model),
   * logged at the window's end time.
   */
  writePrediction(prediction: Prediction, options: PredictionWrite = {}): Promise<void> {
    return this.#writeModelOutput(
      'prediction',
      prediction.streamId,
      prediction.windowEnd,
      () => encodePrediction(prediction, options.model, this.#encoding),
      options,
      () => {
        this.#predictions += 1;
      },
    );
  }

  /**
   * Queues one label on/off event on the stream's `/<streamId>/events` channel (one per stream and model), logged at
   * the event's time: the capture time of the change.
   */
  writeLabelEvent(event: LabelEvent, options: PredictionWrite = {}): Promise<void> {
    return this.#writeModelOutput(
      'label_event',
      event.streamId,
      event.time,
      () => encodeLabelEvent(event, options.model, this.#encoding),
      options,
      () => {
        this.#labelEvents += 1;
      },
    );
  }

  /** What a model made (a prediction, a label event): on its stream's channel of `kind`, numbered per channel. */
  #writeModelOutput(
    kind: 'prediction' | 'label_event',
    streamId: string,
    logTime: Micros,
    encodeMessage: () => EncodedMessage,
    options: PredictionWrite,
    written: () => void,
  ): Promise<void> {
    let message: EncodedMessage;
    let publishTime: bigint;
    try {
      this.#checkOpen();
      message = encodeMessage();
      publishTime = this.#publishTime(options.receiveTime);
      this.#checkBacklog(message);
    } catch (error) {
      return this.#refuse(error);
    }
    const target = {
      kind,
      streamId,
      schema: message.schema,
      ...(options.model !== undefined && { model: options.model }),
    } as const;
    return this.#enqueue(message, async () => {
      const channelId = await this.#channelFor(target);
      const seq = this.#predictionSeq.get(channelId) ?? 0;
      this.#predictionSeq.set(channelId, (seq + 1) % (MAX_SEQUENCE + 1));
      await this.#add(channelId, seq, microsToNanos(logTime), publishTime, message);
      written();
    });
  }

  /**
   * Forgets a stream's channels once the writes queued before this call are done (its `kind` channels only, when
   * given): what the recorder keeps per stream is freed when the stream closes. The last 1024 released channels are
   * kept aside, so a stream that comes back (a loop's next pass, a reconnect) goes on in its old channel; one back
   * after more gets a new channel on the same topic, which readers merge back by the channel metadata. Open streams ×
   * modalities (plus that bounded reserve) bound the recorder's memory, not the streams ever seen (the file's summary
   * still lists every channel, as MCAP wants).
   */
  releaseStream(streamId: string, kind?: ChannelKind): Promise<void> {
    if (this.#closed) return Promise.resolve();
    const run = this.#tail.then(() => {
      const keys = this.#streamChannels.get(streamId);
      if (!keys) return;
      for (const key of [...keys]) {
        if (kind !== undefined && !key.startsWith(`${kind}\u0000`)) continue;
        const id = this.#channels.get(key);
        if (id !== undefined) {
          this.#retired.set(key, { id, seq: this.#predictionSeq.get(id) ?? 0 });
          this.#predictionSeq.delete(id);
          // The oldest retired channel goes first: a stream back after that many others gets a new channel.
          if (this.#retired.size > RETIRED_CHANNELS) this.#retired.delete(this.#retired.keys().next().value!);
        }
        this.#channels.delete(key);
        keys.delete(key);
      }
      if (keys.size === 0) this.#streamChannels.delete(streamId);
    });
    this.#tail = run.catch(() => undefined);
    return run;
  }

  /** Channels the recorder keeps for streams not yet released, and released ones kept for reuse (memory checks). */
  get openChannels(): number {
    return this.#channels.size;
  }
  get retiredChannels(): number {
    return this.#retired.size;
  }

  /** Waits for queued writes, then writes the last chunk, the index and the footer. Safe to call twice. */
  close(): Promise<void> {
    this.#closed ??= this.#finish();
    return this.#closed;
  }

  async #finish(): Promise<void> {
    await this.#tail;
    try {
      if (!this.#failure) await this.#writer.end();
    } catch (error) {
      this.#failure = new RecordingError(this.path, `cannot finalise the recording: ${causeText(error)}`, {
        cause: error,
      });
    } finally {
      await this.#file.close();
    }
    if (this.#failure) throw this.#failure;
  }

  #checkOpen(): void {
    if (this.#closed)
      throw new RecordingError(this.path, 'the recorder is closed; nothing more can be written');
    if (this.#failure) throw this.#failure;
  }

  #publishTime(receiveTime: Micros | undefined): bigint {
    const t = receiveTime ?? this.#clock();
    if (!Number.isSafeInteger(t) || t < 0)
      throw new InvalidOptionError('receiveTime', `must be whole non-negative µs, got ${t}`);
    return microsToNanos(t);
  }

  /** Refuses a write that would take the queue past its bounds; a lone write is always taken, however large. */
  #checkBacklog(message: EncodedMessage): void {
    if (this.#pendingWrites === 0) return;
    const bytes = message.data.byteLength;
    if (this.#pendingWrites >= this.#maxPendingWrites || this.#pendingBytes + bytes > this.#maxPendingBytes)
      throw new WriteBacklogError(
        this.path,
        `write refused: ${this.#pendingWrites} writes (${this.#pendingBytes} bytes) are already queued (maxPendingWrites ${this.#maxPendingWrites}, maxPendingBytes ${this.#maxPendingBytes}); the disk is slower than the events`,
      );
  }

  #refuse(error: unknown): Promise<never> {
    const reason =
      error instanceof InvalidEventError || error instanceof WriteBacklogError
        ? error.reason
        : error instanceof InvalidOptionError
          ? 'bad_receive_time'
          : error instanceof RecordingError && this.#failure !== undefined
            ? 'recording_failed'
            : undefined;
    if (reason !== undefined) this.#rejected[reason] = (this.#rejected[reason] ?? 0) + 1;
    return Promise.reject(error);
  }

  #enqueue(message: EncodedMessage, operation: () => Promise<void>): Promise<void> {
    const bytes = message.data.byteLength;
    this.#pendingWrites += 1;
    this.#pendingBytes += bytes;
    const run = this.#tail.then(async () => {
      try {
        if (this.#failure) throw this.#failure;
        await operation();
      } catch (error) {
        this.#failure ??= new RecordingError(this.path, `writing failed: ${causeText(error)}`, {
          cause: error,
        });
        throw this.#failure;
      } finally {
        this.#pendingWrites -= 1;
        this.#pendingBytes -= bytes;
      }
    });
    this.#tail = run.catch(() => undefined);
    return run;
  }

  async #add(
    channelId: number,
    sequence: number,
    logTime: bigint,
    publishTime: bigint,
    message: EncodedMessage,
  ): Promise<void> {
    await this.#writer.addMessage({ channelId, sequence, logTime, publishTime, data: message.data });
  }

  async #channelFor(target: ChannelTarget): Promise<number> {
    const key = `${target.kind}\u0000${target.streamId}\u0000${target.modality ?? ''}\u0000${target.schema}\u0000${target.model ?? ''}`;
    const known = this.#channels.get(key);
    if (known !== undefined) return known;
    const retired = this.#retired.get(key);
    if (retired !== undefined) {
      // A stream back after it closed (a loop's next pass, a producer reconnecting): its old channel goes on.
      this.#retired.delete(key);
      this.#predictionSeq.set(retired.id, retired.seq);
      this.#remember(target.streamId, key, retired.id);
      return retired.id;
    }
    const schemaId = await this.#schemaId(target.schema);
    const metadata = new Map<string, string>([
      [CHANNEL_KEY.streamId, target.streamId],
      [CHANNEL_KEY.kind, target.kind],
    ]);
    if (target.modality) metadata.set(CHANNEL_KEY.modality, target.modality);
    if (target.model !== undefined) metadata.set(CHANNEL_KEY.model, target.model);
    const what =
      target.kind === 'view'
        ? 'log'
        : target.kind === 'prediction'
          ? 'prediction'
          : target.kind === 'label_event'
            ? 'events'
            : target.modality;
    const id = await this.#writer.registerChannel({
      topic: topicFor(target.streamId, what ?? 'prediction'),
      messageEncoding: this.#encoding,
      schemaId,
      metadata,
    });
    this.#remember(target.streamId, key, id);
    return id;
  }

  #remember(streamId: string, key: string, id: number): void {
    this.#channels.set(key, id);
    let keys = this.#streamChannels.get(streamId);
    if (!keys) this.#streamChannels.set(streamId, (keys = new Set()));
    keys.add(key);
  }

  async #schemaId(name: SchemaName): Promise<number> {
    const known = this.#schemas.get(name);
    if (known !== undefined) return known;
    const data = this.#encoding === 'protobuf' ? protoSchema(name).data : schemaData(name);
    const id = await this.#writer.registerSchema({ name, encoding: SCHEMA_ENCODING[this.#encoding], data });
    this.#schemas.set(name, id);
    return id;
  }
}
