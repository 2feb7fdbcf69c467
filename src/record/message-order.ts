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

/** Re-orders runs of equal log time of a stream already in log-time order. */
export async function* orderTies(messages: AsyncIterable<RawMessage>): AsyncGenerator<RawMessage> {
  let run: RawMessage[] = [];
  for await (const message of messages) {
    if (run.length > 0 && message.logTime !== run[0]!.logTime) {
      yield* run.length > 1 ? run.sort(compareMessages) : run;
      run = [];
    }
    run.push(message);
  }
  yield* run.length > 1 ? run.sort(compareMessages) : run;
}

/** Removes and returns, in order, the pending messages strictly before `watermark` (all of them without one). */
export function takeBefore(pending: RawMessage[], watermark?: bigint): RawMessage[] {
  pending.sort(compareMessages);
  let n = watermark === undefined ? pending.length : 0;
  while (n < pending.length && pending[n]!.logTime < watermark!) n += 1;
  return pending.splice(0, n);
}
