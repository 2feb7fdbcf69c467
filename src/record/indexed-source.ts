import { type DecompressHandlers, McapIndexedReader } from '@mcap/core';
import type { FileReadable } from './file-io.js';
import { orderTies, type RawMessage } from './message-order.js';
import type { McapChannel, MessageQuery, MessageSource } from './message-source.js';
import { METADATA_NAME } from './schemas.js';

/** A finished recording, read through its summary: seeks by chunk index, counts come from its statistics. */
class IndexedSource implements MessageSource {
  readonly complete = true;
  readonly warnings = [];

  constructor(
    private readonly reader: McapIndexedReader,
    readonly metadata: ReadonlyMap<string, string>,
    readonly messageCounts: ReadonlyMap<number, number>,
    readonly startTime: bigint | undefined,
    readonly endTime: bigint | undefined,
  ) {}

  get channelEnds(): ReadonlyMap<number, bigint> {
    this.#ends ??= chunkEnds(this.reader, this.endTime);
    return this.#ends;
  }
  #ends: Map<number, bigint> | undefined;

  get profile(): string {
    return this.reader.header.profile;
  }
  get library(): string {
    return this.reader.header.library;
  }
  get channels(): ReadonlyMap<number, McapChannel> {
    return this.reader.channelsById;
  }
  get schemas() {
    return this.reader.schemasById;
  }

  async *messages(query: MessageQuery): AsyncGenerator<RawMessage[]> {
    if (query.channelIds.size === 0) return;
    const topics = [...query.channelIds].map((id) => this.reader.channelsById.get(id)?.topic ?? '');
    const selected = this.reader.readMessages({
      topics: [...new Set(topics)],
      ...(query.start !== undefined && { startTime: query.start }),
      ...(query.end !== undefined && { endTime: query.end }),
    });
    // Topics may be shared by channels the query does not want; when none is, there is nothing to filter.
    const unwanted = [...this.reader.channelsById.values()].some(
      (c) => topics.includes(c.topic) && !query.channelIds.has(c.id),
    );
    yield* orderTies(selected, unwanted ? (m) => query.channelIds.has(m.channelId) : undefined);
  }
}

/** The end of the last chunk holding each channel (the file's last log time for messages outside chunks). */
function chunkEnds(reader: McapIndexedReader, fileEnd: bigint | undefined): Map<number, bigint> {
  const ends = new Map<number, bigint>();
  for (const chunk of reader.chunkIndexes)
    for (const id of chunk.messageIndexOffsets.keys()) {
      const known = ends.get(id);
      if (known === undefined || chunk.messageEndTime > known) ends.set(id, chunk.messageEndTime);
    }
  if (reader.chunkIndexes.length === 0 && fileEnd !== undefined)
    for (const id of reader.channelsById.keys()) ends.set(id, fileEnd);
  return ends;
}

/**
 * The file's summary is sound but a message it indexes could not be read (a chunk that fails its CRC, a compression
 * with no decoder): the file is finished and damaged, not cut short, so reading it record by record would misreport it.
 */
export class IndexedMessagesError extends Error {
  constructor(
    /** Messages read before the failure. */
    readonly messages: number,
    cause: unknown,
  ) {
    super(`reading messages failed after ${messages} messages`, { cause });
  }
}

/** Counts and time span without statistics (files from other writers): one pass over every message. */
async function countMessages(reader: McapIndexedReader) {
  const counts = new Map<number, number>();
  let start: bigint | undefined;
  let end: bigint | undefined;
  let read = 0;
  try {
    for await (const m of reader.readMessages()) {
      read += 1;
      counts.set(m.channelId, (counts.get(m.channelId) ?? 0) + 1);
      if (start === undefined || m.logTime < start) start = m.logTime;
      if (end === undefined || m.logTime > end) end = m.logTime;
    }
  } catch (error) {
    throw new IndexedMessagesError(read, error);
  }
  return { counts, start, end };
}

/**
 * Why the summary cannot find every message, or undefined when it can. McapIndexedReader reads messages only through
 * chunk and message indexes, and only on the channels and schemas the summary repeats; the MCAP spec makes each of
 * them optional, so a valid file of another writer may lack them (and its messages would read as none at all).
 */
function unindexed(reader: McapIndexedReader): string | undefined {
  const stats = reader.statistics;
  if (reader.chunkIndexes.length === 0 && (stats === undefined || stats.messageCount > 0n))
    return stats === undefined
      ? 'its summary has no chunk index and no statistics'
      : `its summary has no chunk index for its ${stats.messageCount} messages`;
  const channels = new Set(stats?.channelMessageCounts.keys());
  for (const chunk of reader.chunkIndexes) {
    // A chunk of no messages (only schemas and channels) has no message index, and times 0 (as @mcap/core's rule).
    if (
      chunk.messageIndexOffsets.size === 0 &&
      (chunk.messageStartTime !== 0n || chunk.messageEndTime !== 0n)
    )
      return `the chunk at byte ${chunk.chunkStartOffset} has no message index`;
    for (const id of chunk.messageIndexOffsets.keys()) channels.add(id);
  }
  for (const id of channels)
    if (!reader.channelsById.has(id)) return `its summary does not repeat channel ${id}`;
  for (const channel of reader.channelsById.values())
    if (channel.schemaId !== 0 && !reader.schemasById.has(channel.schemaId))
      return `its summary does not repeat schema ${channel.schemaId} (of channel ${channel.id})`;
  return undefined;
}

/**
 * Opens a recording through its index; throws (with @mcap/core's reason, or what the summary lacks) when it has no
 * summary that finds every message, and an {@link IndexedMessagesError} when it has one but its messages fail.
 */
export async function openIndexedSource(
  readable: FileReadable,
  decompressHandlers: DecompressHandlers,
): Promise<MessageSource> {
  const reader = await McapIndexedReader.Initialize({ readable, decompressHandlers });
  const lacking = unindexed(reader);
  if (lacking !== undefined) throw new Error(lacking);
  const metadata = new Map<string, string>();
  for await (const record of reader.readMetadata({ name: METADATA_NAME }))
    for (const [key, value] of record.metadata) metadata.set(key, value);
  const stats = reader.statistics;
  if (!stats) {
    const { counts, start, end } = await countMessages(reader);
    return new IndexedSource(reader, metadata, counts, start, end);
  }
  const counts = new Map([...stats.channelMessageCounts].map(([id, n]) => [id, Number(n)]));
  const any = stats.messageCount > 0n;
  return new IndexedSource(
    reader,
    metadata,
    counts,
    any ? stats.messageStartTime : undefined,
    any ? stats.messageEndTime : undefined,
  );
}
