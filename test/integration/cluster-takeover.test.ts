import { existsSync } from 'node:fs';
import { from, lastValueFrom, tap } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { streamPhase } from '../../src/align/window-aligner.js';
import { decodePrediction, encodeInput, encodePrediction, isStreamEnd } from '../../src/cluster/codec.js';
import { type PartitionKeys, partitionKeys, senderKey } from '../../src/cluster/partition.js';
import { PartitionSession } from '../../src/cluster/partition-session.js';
import { type BraidRedis, braidRedis, connectRedis } from '../../src/cluster/redis.js';
import { CLUSTER_WINDOWING } from '../../src/cluster/windowing.js';
import type { StreamInput } from '../../src/core/events.js';
import { silentLogger } from '../../src/core/logger.js';
import { loadModel } from '../../src/model/model-io.js';
import { mulberry32 } from '../../src/model/weights.js';
import { PredictionPipelineRunner, REPLAY_QUEUE } from '../../src/pipeline/prediction-pipeline.js';
import { DEMO_MODEL_DIR, untrainedModel } from '../helpers/demo-pipeline.js';
import { hasRedis, type RedisServer, startRedis } from '../helpers/redis-server.js';

/**
 * A partition handed from owner to owner while its streams are open, in one process against a real redis-server: an
 * owner's run is stopped without a final commit (a SIGKILL as far as Redis can tell) and its lease given to the
 * next, several times. The input is what exercises the checkpoint's cut: three streams interleaved, video behind
 * audio within the out-of-orderness bound, progress bounds, a stream that closes and opens again (two sessions of
 * one id), a restart (the clock jumps back), an epoch reset and a gap. What the partition's output holds at the end
 * must equal the pipeline run once over the same input, each stream's predictions and end in order, byte for byte.
 */

const redisHere = hasRedis();
let server: RedisServer;
let redis: BraidRedis;
const model = existsSync(DEMO_MODEL_DIR) ? await loadModel(DEMO_MODEL_DIR) : untrainedModel();
const pipeline = () =>
  PredictionPipelineRunner.create({
    model,
    backend: 'cpu-fused',
    maxQueue: REPLAY_QUEUE,
    windowing: CLUSTER_WINDOWING,
  });

beforeAll(async () => {
  if (!redisHere) return;
  server = await startRedis();
  redis = await connectRedis(server.url, 'queue');
});
afterAll(async () => {
  redis?.disconnect();
  await server?.close();
});

const MS = 1000;
const STILL_FROM = 2_000 * MS;
const STILL_TO = 5_000 * MS;
const T0 = 1_700_000_000_000_000;

/** The hostile input, in the order a gateway would append it (by wall time of arrival), with that time. */
function inputs(): { at: number; input: StreamInput }[] {
  const next = mulberry32(11);
  const out: { at: number; input: StreamInput }[] = [];
  const add = (at: number, input: StreamInput) => out.push({ at, input });
  for (const id of ['a', 'b', 'c']) {
    const seq = { audio: 0, video: 0, text: 0 };
    let shift = 0;
    add(0, { control: 'open', streamId: id, modalities: ['audio', 'video', 'text'] });
    for (let t = 0; t < 14_000 * MS; t += 20 * MS) {
      if (id === 'b' && t >= 5_000 * MS && t < 6_000 * MS) continue;
      // Streams a and b are silent while c's windows wait (so only c has windows queued when its bound comes).
      if (id !== 'c' && t >= STILL_FROM && t < STILL_TO) continue;
      if (id === 'b' && t === 6_000 * MS)
        add(t, { control: 'open', streamId: id, modalities: ['audio', 'video', 'text'] });
      if (id === 'a' && t === 8_000 * MS) {
        // The producer's clock jumped back 3 s: it says so, and its capture times start again lower.
        add(t, { control: 'restart', streamId: id });
        shift = -3_000 * MS;
      }
      const time = T0 + t + shift;
      const samples = Int16Array.from({ length: 320 }, () => Math.round((next() - 0.5) * 8000));
      add(t, {
        streamId: id,
        modality: 'audio',
        time,
        seq: seq.audio++,
        payload: { sampleRate: 16000, channels: 1, samples },
      });
      if (t % (100 * MS) === 0) {
        const data = Uint8Array.from({ length: 64 * 48 }, () => Math.floor(next() * 256));
        // Video arrives 30 ms late (within the 40 ms bound), so audio of later windows comes before it. From 2 s to
        // 5 s stream c's camera sends nothing and no progress bound comes: its windows wait for video, until the
        // bound at 5 s closes six of them in one input (the model then runs them in six steps).
        if (!(id === 'c' && t >= STILL_FROM && t < STILL_TO))
          add(t + 30 * MS, {
            streamId: id,
            modality: 'video',
            time,
            seq: seq.video++,
            payload: { format: 'gray', width: 64, height: 48, data },
          });
        if (!(id === 'c' && t >= STILL_FROM && t < STILL_TO))
          add(t + 31 * MS, { control: 'progress', streamId: id, time: time - 40 * MS });
      }
      if (t % (700 * MS) === 0)
        add(t + 5 * MS, {
          streamId: id,
          modality: 'text',
          time,
          seq: seq.text++,
          payload: { text: `w${t}` },
        });
      if (id === 'c' && t === 4_000 * MS) add(t, { control: 'reset', streamId: id, modality: 'video' });
      if (id === 'c' && t === 9_000 * MS)
        add(t, { control: 'gap', streamId: id, modality: 'audio', from: time - 60 * MS, to: time });
    }
    if (id === 'b') add(5_000 * MS, { control: 'close', streamId: id });
    add(14_000 * MS, { control: 'close', streamId: id });
  }
  // A producer whose every input the aligner refuses (negative capture times), then closes: it has no window and no
  // end, and must not keep its entries in Redis.
  for (let i = 0; i < 5; i++)
    add(1_000 * MS + i * 100 * MS, {
      streamId: 'd',
      modality: 'text',
      time: -1,
      seq: i,
      payload: { text: 'x' },
    });
  add(1_600 * MS, { control: 'close', streamId: 'd' });
  // A stable sort: inputs at the same wall time keep their order.
  return out.sort((x, y) => x.at - y.at);
}

/** Each stream's output, in order: prediction JSON lines and "end". */
function byStream(entries: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const text of entries) {
    const entry = decodePrediction(text);
    const id = isStreamEnd(entry) ? entry.end : entry.streamId;
    const list = out.get(id) ?? [];
    list.push(isStreamEnd(entry) ? 'end' : text);
    out.set(id, list);
  }
  return out;
}

async function reference(all: readonly StreamInput[]): Promise<Map<string, string[]>> {
  const runner = await pipeline();
  // Predictions and ends in the order the pipeline tells them (an end after its stream's last prediction).
  const entries: string[] = [];
  await lastValueFrom(
    runner
      .run(from(all), {
        onStream: (mark) => {
          if (mark.state === 'end') entries.push(encodePrediction({ end: mark.streamId }));
        },
      })
      .pipe(tap((p) => entries.push(encodePrediction(p)))),
    { defaultValue: undefined },
  );
  return byStream(entries);
}

/** Appends inputs to the partition as a gateway would, all sent at once (one connection keeps their order). */
const appendAll = (k: PartitionKeys, inputs: readonly StreamInput[]) =>
  Promise.all(
    inputs.map((input) =>
      redis.braidAppend(
        k.input,
        k.added,
        k.read,
        senderKey(0, 'test'),
        1_000_000,
        '',
        0,
        ...encodeInput(input),
      ),
    ),
  );

/** Gives partition `p`'s lease to a new owner `w{n}` and starts its run on `runner`; its reader joins `readers`. */
async function takePartition(
  p: number,
  k: PartitionKeys,
  n: number,
  runner: PredictionPipelineRunner,
  readers: BraidRedis[],
): Promise<PartitionSession> {
  await redis.del(k.lease);
  const token = (await redis.braidAcquire(k.lease, k.fence, `w${n}`, 60_000)) as string;
  const reader = braidRedis(redis.target, 'queue');
  // Its socket is reset when the server stops after the test; the worker CLI ignores it the same way.
  reader.on('error', () => {});
  readers.push(reader);
  const session = new PartitionSession({
    partition: p,
    keys: k,
    redis,
    reader,
    token,
    leaseMs: 60_000,
    pipeline: runner,
    log: silentLogger,
    outputCap: 1_000_000,
    ended: () => {},
  });
  await session.start();
  return session;
}

const until = async (done: () => Promise<boolean> | boolean) => {
  while (!(await done())) await new Promise((r) => setTimeout(r, 5));
};

describe.skipIf(!redisHere)('a partition taken over again and again mid-stream (real redis-server)', () => {
  it('commits what one uninterrupted run makes, each window once, carrying streams on from their cuts', async () => {
    const arrivals = inputs();
    const all = arrivals.map((a) => a.input);
    // The part of the input with c's bound that closes six windows at once.
    const burst = arrivals.findIndex((a) => a.at >= STILL_TO);
    const expected = await reference(all);
    const total = [...expected.values()].reduce((n, list) => n + list.length, 0);
    const k = partitionKeys(3);
    // The input comes in as it would live, in five parts; every stream closes in the last one.
    const parts = 6;
    const part = Math.ceil(all.length / parts);
    const burstPart = Math.floor(burst / part);
    expect(burstPart).toBeLessThan(parts - 1);
    let appended = 0;
    const append = async () => {
      // Sent at once, so the owner reads them in big batches.
      await appendAll(k, all.slice(appended, appended + part));
      appended = Math.min(all.length, appended + part);
    };
    const owners: PartitionSession[] = [];
    const runners: PredictionPipelineRunner[] = [];
    const readers: BraidRedis[] = [];
    const take = async (n: number) => {
      const session = await takePartition(3, k, n, runners[runners.push(await pipeline()) - 1]!, readers);
      owners.push(session);
      return session;
    };
    let owner = await take(0);
    // A graceful hand-over (a rebalance) at a moment the model still has windows queued — c's bound closed six —
    // so the committed checkpoint's newest valid cut is older than its last committed window, and the
    // next owner must keep a window the aligner makes again from the model.
    const handOverMidBurst = () =>
      new Promise<void>((resolve) => {
        const runner = runners.at(-1)!;
        const { runtime } = runner;
        // c's windows of the still span: closed only by the bound, all in one input; stop once the model has run
        // the first of them and has the others still queued.
        const { hop } = runner.windowing;
        const kOf = (t: number) => Math.floor((t - streamPhase('c', hop)) / hop);
        const [first, last] = [kOf(T0 + STILL_FROM) + 1, kOf(T0 + STILL_TO) - 3];
        const stop = runtime.stats.observeSteps(() => {
          const k = runtime.lastIndex('c');
          if (k === undefined || k < first || k > last) return;
          stop();
          // Once this step's predictions are out and before the next step (its setImmediate comes after this one).
          setImmediate(() => void owner.stop(true).then(resolve));
        });
        void append();
      });
    // Otherwise each owner dies once it has committed something of the part just appended — some once they have
    // read all of it, the others while still at it — and the next one takes the partition, streams open.
    for (let i = 0; i < parts - 1; i++) {
      if (i === burstPart) {
        await handOverMidBurst();
        owner = await take(owners.length);
        continue;
      }
      const before = await redis.xlen(k.output);
      await append();
      await until(async () => (await redis.xlen(k.output)) > before);
      if (i % 2 === 0) await until(() => owner.readCount >= appended);
      await owner.stop(false);
      owner = await take(owners.length);
    }
    await append();
    await until(async () => (await redis.xlen(k.output)) >= total);
    await owner.stop(true);
    const committed = (await redis.xrange(k.output, '-', '+')).map(([, fields]) => fields[1] as string);
    expect(committed).toHaveLength(total);
    expect(byStream(committed)).toEqual(expected);
    // The takeovers carried streams on from their cuts, not from their first entries.
    const resumed = owners.slice(1).reduce((n, o) => n + o.counters.streamsResumed, 0);
    expect(resumed).toBeGreaterThanOrEqual(owners.length - 1);
    // ...and every window made again up to a cut's last committed one was kept from the model (none dropped).
    expect(owners.map((o) => o.counters.cutsFrozen)).toEqual(owners.map(() => 0));
    // The owner after the hand-over mid-burst made c's windows again that were committed after the cut: kept from
    // the model.
    expect(owners[burstPart + 1]!.counters.windowsSkipped).toBeGreaterThan(0);
    // All ended: nothing kept of them, input trimmed to nothing.
    expect(Object.keys(await redis.hgetall(k.checkpoint))).toEqual(['partition']);
    expect(await redis.xlen(k.input)).toBe(0);
    for (const r of readers) r.disconnect();
  }, 120_000);

  it('hands over gracefully while its commits fail (Redis out of memory): nothing the failed commit held is lost', async () => {
    const all = inputs().map((a) => a.input);
    const expected = await reference(all);
    const total = [...expected.values()].reduce((n, list) => n + list.length, 0);
    const k = partitionKeys(5);
    const readers: BraidRedis[] = [];
    const take = async (n: number) => takePartition(5, k, n, await pipeline(), readers);
    const half = Math.floor(all.length / 2);
    const first = await take(0);
    await appendAll(k, all.slice(0, half));
    await until(() => first.readCount >= half);
    // Redis refuses every write from now on (the commit's script with them), as when it reaches its maxmemory.
    await redis.config('SET', 'maxmemory', '1');
    try {
      await until(() => first.counters.commitRetries > 0);
      // A hand-over while that commit waits to try again, and Redis has room again once it has begun.
      const stopping = first.stop(true);
      await redis.config('SET', 'maxmemory', '0');
      await stopping;
    } finally {
      await redis.config('SET', 'maxmemory', '0');
    }
    const second = await take(1);
    await appendAll(k, all.slice(half));
    for (let i = 0; i < 4000 && (await redis.xlen(k.output)) < total; i++)
      await new Promise((r) => setTimeout(r, 5));
    await second.stop(true);
    for (const r of readers) r.disconnect();
    const committed = (await redis.xrange(k.output, '-', '+')).map(([, fields]) => fields[1] as string);
    expect(byStream(committed)).toEqual(expected);
  }, 120_000);
});
