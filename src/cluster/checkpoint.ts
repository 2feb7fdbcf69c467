import { z } from 'zod';
import { BraidError } from '../core/errors.js';

/**
 * A partition's checkpoint, committed with the predictions it covers. `read`: the last input entry taken in.
 * `streams`: each stream still open at that point (or with windows not yet out), oldest session first (a stream id
 * may close and open again): `from`, the entry its session began at, from which all its windows are rebuilt; and
 * `count`, the predictions of that session already committed, which a rebuild skips. `readCount`: entries read, for
 * the gateways' lag. `commit` numbers commits (a retry after a lost reply is recognised); `token` is the lease's.
 */
export const checkpointSchema = z.object({
  token: z.string(),
  commit: z.number().int().nonnegative(),
  read: z.string(),
  readCount: z.number().int().nonnegative(),
  streams: z.record(
    z.string(),
    z.array(z.object({ from: z.string(), count: z.number().int().nonnegative() })),
  ),
});

export type Checkpoint = z.infer<typeof checkpointSchema>;

export const EMPTY_CHECKPOINT: Checkpoint = { token: '', commit: 0, read: '0-0', readCount: 0, streams: {} };

export function parseCheckpoint(text: string | null): Checkpoint {
  if (text === null) return EMPTY_CHECKPOINT;
  const parsed = checkpointSchema.safeParse(JSON.parse(text));
  if (!parsed.success)
    throw new BraidError('BRAID_ERR_CLUSTER', `invalid partition checkpoint: ${parsed.error.message}`);
  return parsed.data;
}
