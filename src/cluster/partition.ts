import { shardOf } from '../shards/shard-of.js';

/** Partitions braid's cluster splits streams over (`--partitions`): every gateway and worker must use the same. */
export const DEFAULT_PARTITIONS = 16;

/**
 * The partition of a stream: FNV-1a of its id, mod P — the same function that gives a stream its shard thread in one
 * process (shardOf), so a partition is to workers what a shard is to threads. Every input of a stream goes to the
 * same partition, so one worker at a time sees all of it, in the order its gateway took it.
 */
export const partitionOf: (streamId: string, partitions: number) => number = shardOf;

/**
 * The Redis keys of one partition. The `{p}` hash tag puts all of them in one Redis Cluster slot, so the Lua
 * scripts that touch several (a commit: lease, checkpoint, output, input) run there atomically.
 */
export interface PartitionKeys {
  /** Input entries (XADD by gateways), trimmed behind the checkpoint. */
  readonly input: string;
  /** Committed predictions (XADD by the owning worker's commits), read by every gateway. */
  readonly output: string;
  /** The owner's fencing token, with a TTL the owner renews. */
  readonly lease: string;
  /** Counter that hands out fencing tokens (never goes down). */
  readonly fence: string;
  /** The last committed checkpoint (JSON). */
  readonly checkpoint: string;
  /** Entries ever added to `input`, and entries a worker has read and committed past: their difference is the lag. */
  readonly added: string;
  readonly read: string;
}

export function partitionKeys(p: number, prefix = 'braid'): PartitionKeys {
  const k = (name: string) => `${prefix}:{${p}}:${name}`;
  return {
    input: k('in'),
    output: k('out'),
    lease: k('lease'),
    fence: k('fence'),
    checkpoint: k('ckpt'),
    added: k('added'),
    read: k('read'),
  };
}

/** A gateway's last append number to partition p (its hash tag: the partition's slot), for braidAppend. */
export const senderKey = (p: number, sender: string, prefix = 'braid') => `${prefix}:{${p}}:sender:${sender}`;

/** Worker membership (a sorted set of worker id → expiry ms) and the cluster's partition count. */
export const membersKey = (prefix = 'braid') => `${prefix}:workers`;
export const partitionsKey = (prefix = 'braid') => `${prefix}:partitions`;

/** Which partitions `worker` should own among the live workers: partition p goes to the (p mod N)th, sorted by id. */
export function assignedPartitions(worker: string, live: readonly string[], partitions: number): number[] {
  const sorted = [...new Set(live)].sort();
  const at = sorted.indexOf(worker);
  if (at < 0) return [];
  const out: number[] = [];
  for (let p = 0; p < partitions; p++) if (p % sorted.length === at) out.push(p);
  return out;
}

/** A stream entry id `ms-seq` compared as numbers (string order is wrong: "9-0" > "10-0"). */
export function compareIds(a: string, b: string): number {
  const [am = '0', as = '0'] = a.split('-');
  const [bm = '0', bs = '0'] = b.split('-');
  const d = BigInt(am) - BigInt(bm);
  if (d !== 0n) return d < 0n ? -1 : 1;
  const e = BigInt(as) - BigInt(bs);
  return e === 0n ? 0 : e < 0n ? -1 : 1;
}

/** The smallest id after `id` (XTRIM MINID keeps ids ≥ its argument). */
export function nextId(id: string): string {
  const [ms = '0', seq = '0'] = id.split('-');
  return `${ms}-${BigInt(seq) + 1n}`;
}
