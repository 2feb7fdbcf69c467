/**
 * The shard that owns a stream: FNV-1a (32 bit) of the stream id's UTF-16 code units, modulo the shard count. A pure
 * function of the id, so every process (worker threads here, machines in a cluster) agrees on it without talking.
 */
export function shardOf(streamId: string, shards: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < streamId.length; i++) {
    hash ^= streamId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % shards;
}
