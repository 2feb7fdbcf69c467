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

/** Counts and time span without statistics (files from other writers): one pass over every message. */
async function countMessages(reader: McapIndexedReader) {
  const counts = new Map<number, number>();
  let start: bigint | undefined;
  let end: bigint | undefined;
  for await (const m of reader.readMessages()) {
    counts.set(m.channelId, (counts.get(m.channelId) ?? 0) + 1);
    if (start === undefined || m.logTime < start) start = m.logTime;
    if (end === undefined || m.logTime > end) end = m.logTime;
  }
  return { counts, start, end };
}

/** Opens a recording through its index; throws (with @mcap/core's reason) when it has no usable summary. */
export async function openIndexedSource(
  readable: FileReadable,
  decompressHandlers: DecompressHandlers,
): Promise<MessageSource> {
  const reader = await McapIndexedReader.Initialize({ readable, decompressHandlers });
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
