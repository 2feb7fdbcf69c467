import { Subject } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway } from '../../src/cluster/gateway.js';
import { type PartitionKeys, partitionKeys, partitionOf, senderKey } from '../../src/cluster/partition.js';
import { type BraidRedis, connectRedis, loadScripts } from '../../src/cluster/redis.js';
import type { StreamInput } from '../../src/core/events.js';
import { PredictionPipelineRunner } from '../../src/pipeline/prediction-pipeline.js';
import { untrainedModel } from '../helpers/demo-pipeline.js';
import { hasRedis, type RedisServer, startRedis } from '../helpers/redis-server.js';
import { startProxy } from '../helpers/tcp-proxy.js';

const redisHere = hasRedis();
let server: RedisServer;
let redis: BraidRedis;

beforeAll(async () => {
  if (!redisHere) return;
  server = await startRedis();
  redis = await connectRedis(server.url, 'queue');
});
afterAll(async () => {
  redis?.disconnect();
  await server?.close();
});

const k = partitionKeys(4);
const commit = (token: string, n: number, ...predictions: string[]) => commitTo(k, token, n, ...predictions);
const commitTo = (k: PartitionKeys, token: string, n: number, ...predictions: string[]) =>
  redis.braidCommit(
    k.lease,
    k.checkpoint,
    k.output,
    k.input,
    k.read,
    k.fence,
    token,
    n,
    JSON.stringify({ token, commit: n, read: '0-0', readCount: 0 }),
    0,
    '',
    1000,
    1,
    0,
    60_000,
    's:x',
    `{"commit":${n}}`,
    ...predictions,
  );

describe.skipIf(!redisHere)('cluster leases and fenced commits (real redis-server)', () => {
  it('lets only the holder of the newest token commit; a retried commit changes nothing', async () => {
    const first = await redis.braidAcquire(k.lease, k.fence, 'w1', 60_000);
    expect(first).toBe('w1/1');
    expect(await redis.braidAcquire(k.lease, k.fence, 'w2', 60_000)).toBeNull();
    expect(await commit(first!, 1, '{"a":1}')).toBe(1);
    // The same commit again (its reply was lost): not appended twice.
    expect(await commit(first!, 1, '{"a":1}')).toBe(1);
    expect(await redis.xlen(k.output)).toBe(1);

    // w1 stalls past its lease; w2 takes the partition with a higher token.
    await redis.del(k.lease);
    const second = await redis.braidAcquire(k.lease, k.fence, 'w2', 60_000);
    expect(second).toBe('w2/2');
    // The stalled w1 wakes up and tries to commit: fenced, nothing written.
    expect(await commit(first!, 2, '{"a":2}')).toBe(0);
    expect(await redis.braidRenew(k.lease, k.fence, first!, 60_000)).toBe(0);
    expect(await redis.xlen(k.output)).toBe(1);
    expect(await commit(second!, 2, '{"b":1}')).toBe(1);
    expect(await redis.xlen(k.output)).toBe(2);
    // The checkpoint hash holds what the last commit that went through set.
    expect(await redis.hget(k.checkpoint, 's:x')).toBe('{"commit":2}');
    expect(JSON.parse((await redis.hget(k.checkpoint, 'partition'))!)).toMatchObject({
      token: second,
      commit: 2,
    });
    // Releasing with a stale token leaves the holder's lease alone.
    await redis.braidRelease(k.lease, k.fence, first!);
    expect(await redis.get(k.lease)).toBe(second);
  });

  it('gives a lapsed lease back to its holder while no token was handed out since, never once given up', async () => {
    const q = partitionKeys(6);
    const token = (await redis.braidAcquire(q.lease, q.fence, 'w1', 60_000))!;
    expect(await redis.braidRenew(q.lease, q.fence, token, 60_000)).toBe(1);
    // w1 stalls past its lease and nobody takes the partition: its renewal takes the lease back, for a full lease.
    await redis.del(q.lease);
    expect(await redis.braidRenew(q.lease, q.fence, token, 60_000)).toBe(2);
    expect(await redis.get(q.lease)).toBe(token);
    expect(await redis.pttl(q.lease)).toBeGreaterThan(59_000);
    // ...or its commit does, written all the same.
    await redis.del(q.lease);
    expect(await commitTo(q, token, 1, '{"a":1}')).toBe(2);
    expect(await redis.get(q.lease)).toBe(token);
    expect(await redis.xlen(q.output)).toBe(1);
    expect(await commitTo(q, token, 2, '{"a":2}')).toBe(1);
    // Given up (a hand-over): the fence moves on, so the old token can neither renew nor commit, lapsed or not.
    await redis.braidRelease(q.lease, q.fence, token);
    expect(await redis.get(q.lease)).toBeNull();
    expect(await redis.braidRenew(q.lease, q.fence, token, 60_000)).toBe(0);
    expect(await commitTo(q, token, 3, '{"a":3}')).toBe(0);
    expect(await redis.xlen(q.output)).toBe(2);
    // The next owner's token is newer than any before it.
    const next = (await redis.braidAcquire(q.lease, q.fence, 'w2', 60_000))!;
    expect(next).toBe('w2/3');
    expect(await redis.braidRenew(q.lease, q.fence, token, 60_000)).toBe(0);
  });

  it('refuses input past the lag cap, atomically with the append', async () => {
    const q = partitionKeys(5);
    for (let i = 0; i < 3; i++)
      await redis.braidAppend(q.input, q.added, q.read, senderKey(0, 'test'), 3, '', 0, 'i', `{"n":${i}}`);
    await expect(
      redis.braidAppend(q.input, q.added, q.read, senderKey(0, 'test'), 3, '', 0, 'i', '{}'),
    ).rejects.toThrow(/^BACKLOG 3/);
    await redis.set(q.read, 2);
    await redis.braidAppend(q.input, q.added, q.read, senderKey(0, 'test'), 3, '', 0, 'i', '{}');
    expect(await redis.xlen(q.input)).toBe(4);
  });

  it("applies a gateway's append once when ioredis sends it again after the reply was lost", async () => {
    const runner = await PredictionPipelineRunner.create({ model: untrainedModel(), backend: 'cpu-fused' });
    // 30 ms each way between the gateway and Redis: the link is cut once Redis has applied every append and
    // before any reply is back, and ioredis re-sends them all when it has reconnected.
    const proxy = await startProxy(() => Number(new URL(server.url).port), 30);
    const link = await connectRedis(`redis://127.0.0.1:${proxy.port}`, 'refuse');
    await loadScripts(link);
    const reader = await connectRedis(server.url, 'queue');
    const gateway = createGateway({ redis: link, reader, partitions: 16, lagCap: 1_000_000, model: runner });
    const input$ = new Subject<StreamInput>();
    const run = gateway.run(input$).subscribe();
    try {
      const id = 'resent';
      const q = partitionKeys(partitionOf(id, 16));
      input$.next({ control: 'open', streamId: id, modalities: ['text'] });
      for (let seq = 0; seq < 20; seq++)
        input$.next({ streamId: id, modality: 'text', time: 1_000 + seq, seq, payload: { text: `t${seq}` } });
      while ((await redis.xlen(q.input)) < 21) await new Promise((r) => setTimeout(r, 1));
      proxy.cut();
      const settled = () => {
        const { appended, refused } = gateway.gatewayStats();
        return appended + Object.values(refused).reduce((a, b) => a + b, 0);
      };
      while (settled() < 21) await new Promise((r) => setTimeout(r, 5));
      const seqs = (await redis.xrange(q.input, '-', '+')).map(
        ([, fields]) => (JSON.parse(String(fields[1])) as { seq?: number }).seq ?? 'open',
      );
      expect(seqs).toEqual(['open', ...Array.from({ length: 20 }, (_, i) => i)]);
      expect(Number(await redis.get(q.added))).toBe(21);
    } finally {
      run.unsubscribe();
      gateway.close();
      link.disconnect();
      reader.disconnect();
      await proxy.close();
    }
  });

  it("keeps a stream's close that came while Redis was away and appends it once Redis is back", async () => {
    const runner = await PredictionPipelineRunner.create({ model: untrainedModel(), backend: 'cpu-fused' });
    const link = await connectRedis(server.url, 'refuse');
    await loadScripts(link);
    const reader = await connectRedis(server.url, 'queue');
    const gateway = createGateway({ redis: link, reader, partitions: 16, lagCap: 1_000_000, model: runner });
    const input$ = new Subject<StreamInput>();
    const refused: string[] = [];
    const run = gateway.run(input$, { refused: (r) => refused.push(r.reason) }).subscribe();
    const until = async (done: () => boolean) => {
      while (!done()) await new Promise((r) => setTimeout(r, 5));
    };
    try {
      const id = 'left-in-a-blip';
      const q = partitionKeys(partitionOf(id, 16));
      input$.next({ control: 'open', streamId: id, modalities: ['text'] });
      input$.next({ streamId: id, modality: 'text', time: 1_000, seq: 0, payload: { text: 'hi' } });
      await until(() => gateway.gatewayStats().appended === 2);
      // The gateway's connection is reset (a failover, a network blip) as the stream's producer leaves.
      await redis.client('KILL', 'ID', String(await link.client('ID')));
      await until(() => !gateway.gatewayStats().redisUp);
      input$.next({ streamId: id, modality: 'text', time: 2_000, seq: 1, payload: { text: 'lost' } });
      input$.next({ control: 'close', streamId: id });
      expect(gateway.gatewayStats().held).toBe(1);
      await until(() => gateway.gatewayStats().redisUp);
      expect(gateway.gatewayStats().held).toBe(0);
      const entries = (await redis.xrange(q.input, '-', '+')).map(([, fields]) =>
        JSON.parse(String(fields[1])),
      );
      expect(entries.map((e: { control?: string; seq?: number }) => e.control ?? e.seq)).toEqual([
        'open',
        0,
        'close',
      ]);
      // The event was refused, and said so; the close was not.
      expect(refused).toEqual(['cluster_unavailable']);
      expect(gateway.gatewayStats().refused).toEqual({ cluster_unavailable: 1 });
    } finally {
      run.unsubscribe();
      gateway.close();
      link.disconnect();
      reader.disconnect();
    }
  });

  it('a numbered append at or below the last applied is answered DUPLICATE and not added', async () => {
    // A partition number of its own: the gateway tests above append to partitions 0..15.
    const q = partitionKeys(60);
    const sender = senderKey(60, 'gw');
    expect(await redis.braidAppend(q.input, q.added, q.read, sender, 10, 0, 60_000, 'i', '{}')).toMatch(
      /^\d+-\d+$/,
    );
    expect(await redis.braidAppend(q.input, q.added, q.read, sender, 10, 0, 60_000, 'i', '{}')).toBe(
      'DUPLICATE',
    );
    expect(await redis.braidAppend(q.input, q.added, q.read, sender, 10, 2, 60_000, 'i', '{}')).toMatch(/-/);
    expect(await redis.braidAppend(q.input, q.added, q.read, sender, 10, 1, 60_000, 'i', '{}')).toBe(
      'DUPLICATE',
    );
    expect(await redis.xlen(q.input)).toBe(2);
    expect(await redis.pttl(sender)).toBeGreaterThan(0);
  });
});
