import { Cluster, Redis } from 'ioredis';
import { BraidError } from '../core/errors.js';

/**
 * Lua: does `token` ("worker/n") hold the lease? 1 while it is the lease's value; 2 when the lease lapsed and the
 * fence counter is still n — no token was handed out (or given up) since, so no other worker can have committed —
 * and it is set again for `ttl` ms; 0 when another token holds it or was handed out (that holder is fenced for good).
 */
const HOLDS_LEASE = `
local function holds(lease, fence, token, ttl)
  local held = redis.call('GET', lease)
  if held == token then return 1 end
  if held then return 0 end
  local n = string.match(token, '/(%d+)$')
  if n == nil or redis.call('GET', fence) ~= n then return 0 end
  redis.call('SET', lease, token, 'PX', ttl)
  return 2
end`;

/** Lua scripts, each atomic in Redis; keys of one partition only (one Redis Cluster slot, see partitionKeys). */
const SCRIPTS = {
  /**
   * A gateway takes one input: refused ('backlog') when the partition's lag — entries added minus entries workers
   * have committed past — is at the cap; otherwise appended, and counted. Each append carries its sender's number
   * (a gateway's count of its appends to the partition): one at or below the last applied is an append re-sent after
   * its reply was lost (ioredis re-sends what was in flight when it reconnects) and is answered 'DUPLICATE' without
   * adding it again. KEYS: input, added, read, the sender's last number. ARGV: cap, number ('' for none), the
   * number's ttl ms, then the entry's fields.
   */
  braidAppend: {
    numberOfKeys: 4,
    lua: `
if ARGV[2] ~= '' and tonumber(ARGV[2]) <= tonumber(redis.call('GET', KEYS[4]) or '-1') then return 'DUPLICATE' end
local lag = tonumber(redis.call('GET', KEYS[2]) or '0') - tonumber(redis.call('GET', KEYS[3]) or '0')
if lag >= tonumber(ARGV[1]) then return redis.error_reply('BACKLOG ' .. lag) end
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[1], '*', unpack(fields))
redis.call('INCR', KEYS[2])
if ARGV[2] ~= '' then redis.call('SET', KEYS[4], ARGV[2], 'PX', ARGV[3]) end
return id`,
  },
  /** Takes a free lease with a new fencing token "worker/n". KEYS: lease, fence. ARGV: worker, ttl ms. */
  braidAcquire: {
    numberOfKeys: 2,
    lua: `
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local token = ARGV[1] .. '/' .. redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token, 'PX', ARGV[2])
return token`,
  },
  /**
   * Extends a lease its token still holds (1); takes back one that lapsed while no token was handed out since (2:
   * nobody else can have committed, so the holder runs on as it was); or says it is lost (0).
   * KEYS: lease, fence. ARGV: token, ttl ms.
   */
  braidRenew: {
    numberOfKeys: 2,
    lua: `${HOLDS_LEASE}
local held = holds(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
if held == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return held`,
  },
  /**
   * Gives a lease up if its token still holds it, and moves the fence on: a token given up is never taken back.
   * KEYS: lease, fence. ARGV: token.
   */
  braidRelease: {
    numberOfKeys: 2,
    lua: `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('INCR', KEYS[2])
end
return 1`,
  },
  /**
   * A worker's commit, fenced: only while its token still holds the lease, the predictions it covers are appended,
   * the checkpoint hash updated (its `partition` field, the stream fields that changed set, those of ended streams
   * deleted), the read count set, and the input trimmed behind the checkpoint — all or nothing. A commit whose number
   * the checkpoint already has (a retry after a lost reply) changes nothing. Returns 1; 2 when it took the lapsed
   * lease back first (as braidRenew); 0 when the lease is lost. KEYS: lease, checkpoint, output, input, read, fence.
   * ARGV: token, commit number, partition field JSON, read count, trim id ('' for none), output cap, n fields set,
   * m fields deleted, lease ttl ms, then n (field, value) pairs, m fields, predictions.
   */
  braidCommit: {
    numberOfKeys: 6,
    lua: `${HOLDS_LEASE}
local held = holds(KEYS[1], KEYS[6], ARGV[1], ARGV[9])
if held == 0 then return 0 end
local current = redis.call('HGET', KEYS[2], 'partition')
if current then
  local c = cjson.decode(current)
  if c.token == ARGV[1] and tonumber(c.commit) >= tonumber(ARGV[2]) then return held end
end
local set = tonumber(ARGV[7])
local del = tonumber(ARGV[8])
local at = 10
local fields = {'partition', ARGV[3]}
for i = 1, set do
  fields[#fields + 1] = ARGV[at]
  fields[#fields + 1] = ARGV[at + 1]
  at = at + 2
end
redis.call('HSET', KEYS[2], unpack(fields))
if del > 0 then
  local gone = {}
  for i = 1, del do gone[i] = ARGV[at]; at = at + 1 end
  redis.call('HDEL', KEYS[2], unpack(gone))
end
for i = at, #ARGV do redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'p', ARGV[i]) end
redis.call('SET', KEYS[5], ARGV[4])
if ARGV[5] ~= '' then redis.call('XTRIM', KEYS[4], 'MINID', ARGV[5]) end
return held`,
  },
  /**
   * A worker's heartbeat: its membership expires `ttl` ms from Redis's own clock (one clock for every machine);
   * expired members are dropped. Returns the live members. KEYS: members. ARGV: worker, ttl ms ('-1': leave).
   */
  braidMembers: {
    numberOfKeys: 1,
    lua: `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[2] == '-1' then redis.call('ZREM', KEYS[1], ARGV[1])
else redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)`,
  },
} as const;

/** The Redis braid runs on: one server, or a Redis Cluster reached through any of its nodes (told apart at start). */
export interface RedisTarget {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly username?: string;
  readonly password?: string;
  /** The server says `cluster_enabled:1`: ioredis' Cluster client, which routes each key to its slot's node. */
  readonly cluster: boolean;
}

interface BraidCommands {
  braidAppend(...args: (string | Buffer | number)[]): Promise<string>;
  braidAcquire(lease: string, fence: string, worker: string, ttlMs: number): Promise<string | null>;
  braidRenew(lease: string, fence: string, token: string, ttlMs: number): Promise<number>;
  braidRelease(lease: string, fence: string, token: string): Promise<number>;
  braidCommit(...args: (string | number)[]): Promise<number>;
  braidMembers(members: string, worker: string, ttlMs: number): Promise<string[]>;
  /** Where it connects (a connection of its own for blocking reads is made from it). */
  readonly target: RedisTarget;
}

/**
 * A client with braid's scripts: ioredis' `Redis` for one server, its `Cluster` for a Redis Cluster. Every command
 * and script braid sends touches the keys of one partition (one hash tag, one slot) or a single key, so each runs on
 * one node either way. Multi-key commands across partitions (the gateway's XREAD of every output) are not sent to a
 * cluster: see gateway.ts.
 */
export type BraidRedis = (Redis | Cluster) & BraidCommands;

const retryDelay = (times: number): number => Math.min(2000, 50 * 2 ** Math.min(times, 6));

/**
 * A Redis client with braid's scripts. ioredis reconnects by itself with a growing delay (capped at 2 s) and
 * re-sends what was in flight; `offline: 'refuse'` makes commands fail at once while it is disconnected (a gateway
 * must refuse input then, not queue it in memory), `'queue'` holds them until it is back (a worker pauses).
 */
export function braidRedis(target: RedisTarget, offline: 'refuse' | 'queue'): BraidRedis {
  const queue = offline === 'queue';
  const client = target.cluster
    ? new Cluster([{ host: target.host, port: target.port }], {
        enableOfflineQueue: queue,
        lazyConnect: true,
        clusterRetryStrategy: retryDelay,
        // A node that fails over or a slot that moves: ioredis follows MOVED/ASK and retries these.
        retryDelayOnClusterDown: 100,
        retryDelayOnFailover: 100,
        redisOptions: {
          maxRetriesPerRequest: queue ? null : 1,
          ...(target.username !== undefined && { username: target.username }),
          ...(target.password !== undefined && { password: target.password }),
        },
      })
    : new Redis(target.url, {
        enableOfflineQueue: queue,
        maxRetriesPerRequest: queue ? null : 1,
        retryStrategy: retryDelay,
        lazyConnect: true,
      });
  for (const [name, script] of Object.entries(SCRIPTS))
    client.defineCommand(name, { numberOfKeys: script.numberOfKeys, lua: script.lua });
  Object.defineProperty(client, 'target', { value: target });
  return client as BraidRedis;
}

/**
 * Loads every script into Redis's script cache — on every master of a cluster. A gateway does it before it takes
 * input after each (re)connect: a script missing after a Redis restart is answered NOSCRIPT and re-sent as EVAL,
 * which would let the appends sent behind it overtake it — and a stream's entries must stay in the order they came.
 */
export async function loadScripts(redis: BraidRedis): Promise<void> {
  const nodes = redis instanceof Cluster ? redis.nodes('master') : [redis];
  for (const node of nodes)
    for (const script of Object.values(SCRIPTS)) await node.script('LOAD', script.lua);
}

/**
 * Connects, or fails with a clear error when Redis is not there: a gateway or worker that cannot reach Redis at
 * start exits (code 1) instead of waiting in silence. Whether it is a Redis Cluster is asked of the server itself
 * (`INFO cluster`), so the same `redis://HOST:PORT` names either: for a cluster, any node.
 */
export async function connectRedis(url: string, offline: 'refuse' | 'queue'): Promise<BraidRedis> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new BraidError('BRAID_ERR_CLUSTER', `--redis must be a redis://HOST:PORT URL, got "${url}"`);
  }
  const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  // The socket's own error (ECONNREFUSED, ENOTFOUND...) says more than the "Connection is closed" connect() rejects with.
  let cause: Error | undefined;
  probe.on('error', (error: Error) => {
    cause ??= error;
  });
  let info: string;
  try {
    await probe.connect();
    info = await probe.info('cluster');
  } catch (error) {
    probe.disconnect();
    const why = cause?.message ?? (error instanceof Error ? error.message : String(error));
    throw new BraidError('BRAID_ERR_CLUSTER', `cannot reach Redis at ${parsed.host}: ${why}`);
  }
  probe.disconnect();
  const target: RedisTarget = {
    url,
    host: parsed.hostname || '127.0.0.1',
    port: Number(parsed.port || 6379),
    ...(parsed.username && { username: decodeURIComponent(parsed.username) }),
    ...(parsed.password && { password: decodeURIComponent(parsed.password) }),
    cluster: /^cluster_enabled:1/m.test(info),
  };
  const redis = braidRedis(target, offline);
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    throw new BraidError(
      'BRAID_ERR_CLUSTER',
      `cannot reach Redis${target.cluster ? ' Cluster' : ''} at ${parsed.host}: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  return redis;
}

/** Every gateway and worker must split streams the same way: the first to start sets the count, the rest check. */
export async function checkPartitions(redis: BraidRedis, key: string, partitions: number): Promise<void> {
  await redis.set(key, String(partitions), 'NX');
  const stored = Number(await redis.get(key));
  if (stored !== partitions)
    throw new BraidError(
      'BRAID_ERR_CLUSTER',
      `this cluster splits streams into ${stored} partitions, this process was started with --partitions ${partitions}`,
    );
}
