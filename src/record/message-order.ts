import type { TypedMcapRecords } from '@mcap/core';

export type RawMessage = TypedMcapRecords['Message'];

/**
 * The one order braid reads recordings in: log time, then channel id, then sequence. MCAP readers only promise
 * log-time order (ties follow file layout), so equal log times are sorted here to make every read identical.
 */
export function compareMessages(a: RawMessage, b: RawMessage): number {
  if (a.logTime !== b.logTime) return a.logTime < b.logTime ? -1 : 1;
  if (a.channelId !== b.channelId) return a.channelId - b.channelId;
  return a.sequence - b.sequence;
}

/** Messages handed on at once: enough to spread the cost of each step of an async iteration over many. */
export const BATCH = 512;

/**
 * Re-orders runs of equal log time of a stream already in log-time order, keeping only `wanted` messages, and hands
 * them on in batches of about {@link BATCH} (a run of equal times is never split): one await per batch instead of one
 * per message is most of what reading costs beyond the raw MCAP read.
 */
export async function* orderTies(
  messages: AsyncIterable<RawMessage>,
  wanted?: (m: RawMessage) => boolean,
): AsyncGenerator<RawMessage[]> {
  let batch: RawMessage[] = [];
  let runStart = 0;
  const closeRun = () => {
    if (batch.length - runStart > 1) {
      const run = batch.splice(runStart).sort(compareMessages);
      for (const m of run) batch.push(m);
    }
    runStart = batch.length;
  };
  try {
    for await (const message of messages) {
      if (wanted && !wanted(message)) continue;
      if (batch.length > runStart && message.logTime !== (batch[runStart] as RawMessage).logTime) {
        closeRun();
        if (batch.length >= BATCH) {
          yield batch;
          batch = [];
          runStart = 0;
        }
      }
      batch.push(message);
    }
  } catch (error) {
    // What was read before a damaged chunk is handed on before the error, as it was read.
    closeRun();
    if (batch.length > 0) yield batch;
    throw error;
  }
  closeRun();
  if (batch.length > 0) yield batch;
}

/** Removes and returns, in order, the pending messages strictly before `watermark` (all of them without one). */
export function takeBefore(pending: RawMessage[], watermark?: bigint): RawMessage[] {
  pending.sort(compareMessages);
  let n = watermark === undefined ? pending.length : 0;
  while (n < pending.length && pending[n]!.logTime < watermark!) n += 1;
  return pending.splice(0, n);
}
