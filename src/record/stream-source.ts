import { type DecompressHandlers, McapStreamReader, type TypedMcapRecord } from '@mcap/core';
import { MICROS_PER_SECOND } from '../core/time.js';
import { causeText, type RecordingWarning } from './errors.js';
import type { FileReadable } from './file-io.js';
import { type RawMessage, takeBefore } from './message-order.js';
import type { McapChannel, McapSchema, MessageQuery, MessageSource } from './message-source.js';
import { METADATA_NAME } from './schemas.js';

interface ScanEnd {
  /** The reader met a valid footer. */
  readonly complete: boolean;
  /** Bytes left over that did not form a whole record. */
  readonly unparsedBytes: number;
  /** Why reading stopped early at a damaged record, if it did. */
  readonly error?: string;
}

/** Feeds a file through McapStreamReader and yields its records until the data ends or a record is damaged. */
class RecordScan {
  end: ScanEnd | undefined;

  constructor(
    private readonly readable: FileReadable,
    private readonly decompressHandlers: DecompressHandlers,
  ) {}

  async *records(): AsyncGenerator<TypedMcapRecord> {
    const reader = new McapStreamReader({ includeChunks: true, decompressHandlers: this.decompressHandlers });
    try {
      for await (const block of this.readable.blocks()) {
        reader.append(block);
        for (let record = reader.nextRecord(); record; record = reader.nextRecord()) yield record;
        if (reader.done()) break;
      }
      this.end = { complete: reader.done(), unparsedBytes: reader.bytesRemaining() };
    } catch (error) {
      this.end = { complete: false, unparsedBytes: 0, error: causeText(error) };
    }
  }
}

/** What a first pass over the records learns: everything but the messages, plus each chunk's first log time. */
interface Survey {
  profile: string;
  library: string;
  channels: Map<number, McapChannel>;
  schemas: Map<number, McapSchema>;
  metadata: Map<string, string>;
  counts: Map<number, number>;
  /** Last log time of each channel. */
  ends: Map<number, bigint>;
  chunkStarts: bigint[];
  /** Earliest log time of each run of {@link BLOCK} messages, in file order (chunked or not). */
  blockStarts: bigint[];
  start: bigint | undefined;
  end: bigint | undefined;
  messages: number;
}

function note(survey: Survey, record: TypedMcapRecord): void {
  switch (record.type) {
    case 'Header':
      survey.profile = record.profile;
      survey.library = record.library;
      return;
    // The first definition of an id wins: the summary section repeats them after the data, and a damaged summary
    // (the reason this file is read record by record) must not replace the good ones.
    case 'Schema':
      if (!survey.schemas.has(record.id)) survey.schemas.set(record.id, record);
      return;
    case 'Channel':
      if (!survey.channels.has(record.id)) survey.channels.set(record.id, record);
      return;
    case 'Metadata':
      if (record.name === METADATA_NAME) for (const [k, v] of record.metadata) survey.metadata.set(k, v);
      return;
    case 'Chunk':
      survey.chunkStarts.push(record.messageStartTime);
      return;
    case 'Message': {
      const block = Math.floor(survey.messages / BLOCK);
      const known = survey.blockStarts[block];
      if (known === undefined || record.logTime < known) survey.blockStarts[block] = record.logTime;
      survey.messages += 1;
      survey.counts.set(record.channelId, (survey.counts.get(record.channelId) ?? 0) + 1);
      if ((survey.ends.get(record.channelId) ?? -1n) < record.logTime)
        survey.ends.set(record.channelId, record.logTime);
      if (survey.start === undefined || record.logTime < survey.start) survey.start = record.logTime;
      if (survey.end === undefined || record.logTime > survey.end) survey.end = record.logTime;
      return;
    }
    default:
      return;
  }
}

/**
 * Messages between two points where the merge hands on what no later message can precede. Counted in messages, not
 * chunks: a file of another writer may hold its messages outside chunks (or in one huge chunk), and what is held back
 * stays this many plus however far out of order the file is.
 */
const BLOCK = 1024;

/** suffixMin[i] = the earliest start of block i or any later block: no message before it can still come. */
function suffixMinimum(starts: readonly bigint[]): bigint[] {
  const out = new Array<bigint>(starts.length);
  let min: bigint | undefined;
  for (let i = starts.length - 1; i >= 0; i -= 1) {
    const s = starts[i]!;
    min = min === undefined || s < min ? s : min;
    out[i] = min;
  }
  return out;
}

function describeCut(survey: Survey, end: ScanEnd, indexError: string): RecordingWarning {
  if (end.complete)
    return {
      code: 'no_index',
      message: `its summary/index is unusable (${indexError}); read it record by record instead: ${survey.messages} messages`,
    };
  const upTo =
    survey.end === undefined || survey.start === undefined
      ? 'no complete chunk, so no messages'
      : `${survey.messages} messages in ${survey.chunkStarts.length} chunks, up to log time ${survey.end / 1000n} µs ` +
        `(${Number((survey.end - survey.start) / 1000n) / MICROS_PER_SECOND} s after the first message)`;
  const rest = end.error
    ? `reading stopped at a damaged record: ${end.error}`
    : `the last ${end.unparsedBytes} bytes were an incomplete record and are skipped`;
  return {
    code: 'truncated',
    message: `recording is cut short: it ends without a valid summary and footer (${indexError}); read ${upTo}; ${rest}`,
  };
}

/**
 * A recording without a usable summary (killed while recording, cut short in a copy, or a summary that leaves out
 * indexes): read record by record with McapStreamReader, twice — a survey pass for channels, counts and the earliest
 * log time of each block of messages, then a pass that puts the messages in log-time order, holding back only those
 * a later block could still precede.
 */
class StreamSource implements MessageSource {
  readonly #starts: bigint[];

  constructor(
    private readonly readable: FileReadable,
    private readonly decompressHandlers: DecompressHandlers,
    private readonly survey: Survey,
    readonly warnings: readonly RecordingWarning[],
    /** It ends with a valid footer: finished, only its summary unusable (not cut short). */
    readonly complete: boolean,
  ) {
    this.#starts = suffixMinimum(survey.blockStarts);
  }

  get profile() {
    return this.survey.profile;
  }
  get library() {
    return this.survey.library;
  }
  get channels() {
    return this.survey.channels;
  }
  get schemas() {
    return this.survey.schemas;
  }
  get metadata() {
    return this.survey.metadata;
  }
  get messageCounts() {
    return this.survey.counts;
  }
  get channelEnds() {
    return this.survey.ends;
  }
  get startTime() {
    return this.survey.start;
  }
  get endTime() {
    return this.survey.end;
  }

  async *messages(query: MessageQuery): AsyncGenerator<RawMessage[]> {
    if (query.channelIds.size === 0) return;
    const wanted = (m: RawMessage) =>
      query.channelIds.has(m.channelId) &&
      (query.start === undefined || m.logTime >= query.start) &&
      (query.end === undefined || m.logTime <= query.end);
    const pending: RawMessage[] = [];
    let seen = 0;
    for await (const record of new RecordScan(this.readable, this.decompressHandlers).records()) {
      if (record.type !== 'Message') continue;
      if (wanted(record)) pending.push(record);
      seen += 1;
      if (seen % BLOCK !== 0) continue;
      // A block ends: every message still to come is at or after the next blocks' earliest log time.
      const watermark = this.#starts[seen / BLOCK];
      if (watermark === undefined) continue;
      const ready = takeBefore(pending, watermark);
      if (ready.length > 0) yield ready;
    }
    const rest = takeBefore(pending);
    if (rest.length > 0) yield rest;
  }
}

/** Opens a recording whose index could not be used; `indexError` says why, for the warning. */
export async function openStreamSource(
  readable: FileReadable,
  decompressHandlers: DecompressHandlers,
  indexError: string,
): Promise<MessageSource> {
  const survey: Survey = {
    profile: '',
    library: '',
    channels: new Map(),
    schemas: new Map(),
    metadata: new Map(),
    counts: new Map(),
    ends: new Map(),
    chunkStarts: [],
    blockStarts: [],
    start: undefined,
    end: undefined,
    messages: 0,
  };
  const scan = new RecordScan(readable, decompressHandlers);
  for await (const record of scan.records()) note(survey, record);
  const end = scan.end ?? { complete: false, unparsedBytes: 0 };
  return new StreamSource(
    readable,
    decompressHandlers,
    survey,
    [describeCut(survey, end, indexError)],
    end.complete,
  );
}
