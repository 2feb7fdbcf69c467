import { z } from 'zod';
import { alignerStreamStateSchema } from '../align/stream-state.js';
import { BraidError } from '../core/errors.js';

/**
 * A partition's checkpoint, committed with the predictions it covers, as one Redis hash (`braid:{p}:ckpt`): field
 * `partition` holds {@link PartitionCheckpoint}, and field `s:<stream id>` each open stream's sessions. A hash, not
 * one JSON value, so a commit rewrites only the streams whose committed windows moved (about one in ten per commit
 * at 500 ms windows and 50 ms commits), not every open stream's GRU state and aligner state each time.
 */
export const PARTITION_FIELD = 'partition';
export const streamField = (streamId: string): string => `s:${streamId}`;
export const isStreamField = (field: string): boolean => field.startsWith('s:');

/**
 * `read`: the last input entry taken in; `readCount`: entries read, for the gateways' lag. `commit` numbers commits
 * (a retry after a lost reply is recognised); `token` is the lease's.
 */
export const partitionCheckpointSchema = z.object({
  token: z.string(),
  commit: z.number().int().nonnegative(),
  read: z.string(),
  readCount: z.number().int().nonnegative(),
});
export type PartitionCheckpoint = z.infer<typeof partitionCheckpointSchema>;

/**
 * Where a stream's session can be carried on from without running it again from its start: the cut is just after
 * the aligner took input `entry`, when it had made `windows` windows of the session and was in state `aligner`.
 * Every one of those windows is committed. `refill`: the first entry that may hold an event still buffered at the
 * cut (capture time at or after the aligner's next window start), fed again from there to `entry` as refills;
 * null when nothing was buffered. `model`: the GRU (or LSTM) state after the session's last committed window — its
 * floats as little-endian float32, base64, exactly the runtime's bytes — with the restarts the stream had taken
 * when that window was made; null when no window is committed yet.
 */
export const resumeSchema = z.object({
  entry: z.string(),
  refill: z.string().nullable(),
  windows: z.number().int().nonnegative(),
  aligner: alignerStreamStateSchema,
  model: z
    .object({
      lastIndex: z.number().int().nullable(),
      lastEnd: z.number().int(),
      restarts: z.number().int().nonnegative(),
      state: z.string(),
    })
    .nullable(),
});
export type Resume = z.infer<typeof resumeSchema>;

/**
 * One session of a stream (a stream id may close and open again, so a stream has a list, oldest first): `from`, the
 * entry it began at; `count`, its predictions already committed; `resume`, for the oldest session only, the cut to
 * carry it on from. Without one, a takeover runs the session again from `from` and skips `count` predictions.
 */
export const sessionCheckpointSchema = z.object({
  from: z.string(),
  count: z.number().int().nonnegative(),
  resume: resumeSchema.optional(),
});
export type SessionCheckpoint = z.infer<typeof sessionCheckpointSchema>;

export interface Checkpoint {
  readonly partition: PartitionCheckpoint;
  readonly streams: Readonly<Record<string, readonly SessionCheckpoint[]>>;
}

export const EMPTY_CHECKPOINT: Checkpoint = {
  partition: { token: '', commit: 0, read: '0-0', readCount: 0 },
  streams: {},
};

const invalid = (what: string, message: string) =>
  new BraidError('BRAID_ERR_CLUSTER', `invalid partition checkpoint (${what}): ${message}`);

/** The checkpoint of a partition from its hash (HGETALL; empty when the partition never committed). */
export function parseCheckpoint(hash: Readonly<Record<string, string>>): Checkpoint {
  const head = hash[PARTITION_FIELD];
  if (head === undefined) return EMPTY_CHECKPOINT;
  const partition = partitionCheckpointSchema.safeParse(JSON.parse(head));
  if (!partition.success) throw invalid(PARTITION_FIELD, partition.error.message);
  const streams: Record<string, SessionCheckpoint[]> = {};
  for (const [field, value] of Object.entries(hash)) {
    if (!isStreamField(field)) continue;
    const sessions = z.array(sessionCheckpointSchema).safeParse(JSON.parse(value));
    if (!sessions.success) throw invalid(field, sessions.error.message);
    streams[field.slice(2)] = sessions.data;
  }
  return { partition: partition.data, streams };
}
