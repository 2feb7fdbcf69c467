import type { TypedMcapRecords } from '@mcap/core';
import type { RecordingWarning } from './errors.js';
import type { RawMessage } from './message-order.js';

export type McapChannel = TypedMcapRecords['Channel'];
export type McapSchema = TypedMcapRecords['Schema'];

/** Which messages to read: log times in [start, end] ns (both inclusive, as in MCAP) of some channels. */
export interface MessageQuery {
  readonly start?: bigint;
  readonly end?: bigint;
  readonly channelIds: ReadonlySet<number>;
}

/**
 * What a recording holds, whichever way it had to be read: through its index (a finished file) or record by
 * record (a file cut short). Messages come out in {@link compareMessages} order either way.
 */
export interface MessageSource {
  /** The file had a valid summary and footer. */
  readonly complete: boolean;
  readonly profile: string;
  readonly library: string;
  readonly channels: ReadonlyMap<number, McapChannel>;
  readonly schemas: ReadonlyMap<number, McapSchema>;
  /** Key/values of the file's `braid` metadata record(s). */
  readonly metadata: ReadonlyMap<string, string>;
  readonly messageCounts: ReadonlyMap<number, number>;
  /** Log time of the first and last message in ns; undefined when the file holds none. */
  readonly startTime: bigint | undefined;
  readonly endTime: bigint | undefined;
  /**
   * Per channel, a log time (ns) no message of it is later than: exact for a file read record by record, the end of
   * the last chunk holding the channel for an indexed file. A replay closes a stream once it has read past this.
   */
  readonly channelEnds: ReadonlyMap<number, bigint>;
  /** Problems found while opening (a truncated file...). */
  readonly warnings: readonly RecordingWarning[];
  /** The query's messages in order, a batch at a time (see orderTies). */
  messages(query: MessageQuery): AsyncGenerator<RawMessage[]>;
}
