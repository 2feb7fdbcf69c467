import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Cluster, Redis } from 'ioredis';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectProducer } from '../../src/client/producer.js';
import { compareIds } from '../../src/cluster/partition.js';
import type { PredictionMessage } from '../../src/server/protocol.js';
import {
  asReplayLines,
  type BraidProcess,
  braid,
  killAll,
  replayOffset,
  serveOn,
  subscribeAll,
} from '../helpers/braid-process.js';
import {
  freePort,
  hasRedis,
  hasRedisCluster,
  type RedisClusterServers,
  type RedisServer,
  startRedis,
  startRedisCluster,
} from '../helpers/redis-server.js';

// bin/braid.js runs dist/: the suite's pretest builds it (`npm run build` before running this file alone).
const DEMO = 'streams/demo.mcap';
const HOP = 500_000;
const UNTIL = '10s';
const TOPICS = ['audio', 'video', 'text', 'label'] as const;
/** The demo recording under another stream id (each on a partition another of three workers owns: 9, 7, 11). */
const mapAs = (id: string) => ['--map', ...TOPICS.map((t) => `/demo/${t}=${id}:${t}`)];

const run = promisify(execFile);
const redisHere = hasRedis();
let redis: RedisServer | undefined;
let redisCluster: RedisClusterServers | undefined;

afterEach(async () => {
  killAll();
  await redis?.close();
  redis = undefined;
  await redisCluster?.close();
  redisCluster = undefined;
});

/** What a local `braid replay` of the demo, as stream `id`, writes: the reference, byte for byte. */
async function localReplay(id: string): Promise<string> {
  const { stdout } = await run(
    process.execPath,
    ['bin/braid.js', 'replay', DEMO, '--to', UNTIL, ...mapAs(id)],
    {
      encoding: 'utf8',
    },
  );
  return stdout;
}

const expected = new Map<string, string>();
beforeAll(async () => {
  if (!redisHere && !hasRedisCluster()) return;
  const ids = ['s1', 'beta', 'alpha'];
  const outputs = await Promise.all(ids.map(localReplay));
  for (const [i, id] of ids.entries()) expected.set(id, outputs[i]!);
});

/** Every worker a test started, killed or not: their logs say which partitions were taken over. */
const everyWorker: BraidProcess[] = [];

async function worker(url: string, ...args: string[]): Promise<BraidProcess> {
  const w = braid(['worker', '--redis', url, '--lease', '1s', ...args]);
  everyWorker.push(w);
  await w.waitFor(/"event":"worker"/);
  return w;
}

function replayTo(gateway: string, id: string, ...args: string[]): BraidProcess {
  return braid([
    'replay',
    DEMO,
    '--until',
    UNTIL,
    '--to',
    `${gateway.replace('http', 'ws')}/ingest`,
    ...mapAs(id),
    ...args,
  ]);
}

/** A worker's /metrics text, fetched from the URL it logged. */
async function scrape(w: BraidProcess): Promise<string> {
  const m = await w.waitFor(/worker metrics on (http:\/\/[^\s"]+)\/metrics/);
  const res = await fetch(`${m[1]}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}
const metric = (text: string, name: string): number =>
  Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);

const ofStream = (ps: readonly PredictionMessage[], id: string) => ps.filter((p) => p.streamId === id);

describe.skipIf(!redisHere)('braid cluster (gateway and workers on Redis Streams)', () => {
  it('gives every window exactly once, as a local replay does, while workers are SIGKILLed and replaced', async () => {
    redis = await startRedis();
    const gateway = await serveOn(['--redis', redis.url, '--backend', 'cpu-fused']);
    const workers = await Promise.all([worker(redis.url), worker(redis.url), worker(redis.url)]);
    const sub = await subscribeAll(gateway.url);
    const total = [...expected.values()].reduce((n, text) => n + text.split('\n').filter(Boolean).length, 0);
    const replays = ['s1', 'beta', 'alpha'].map((id) => ({
      id,
      p: replayTo(gateway.url, id, '--speed', '1'),
    }));
    const offsets = await Promise.all(replays.map((r) => replayOffset(r.p)));
    // Kills at random moments of the run, each once the subscriber has seen another random share of the windows;
    // a new worker is started at once (it joins while the others take over the victim's partitions).
    const atKill: number[] = [];
    for (const share of [0.05, 0.25, 0.45, 0.65].map((s) => s + Math.random() * 0.15)) {
      await sub.count(Math.floor(total * share));
      await expect.poll(() => workers.length, { timeout: 30_000 }).toBeGreaterThan(0);
      const victim = workers.splice(Math.floor(Math.random() * workers.length), 1)[0]!;
      victim.child.kill('SIGKILL');
      atKill.push(sub.predictions.length);
      // Killed after the test (killAll) if it has not joined by then: that is not a failure of the run.
      worker(redis.url).then(
        (w) => workers.push(w),
        () => undefined,
      );
    }
    expect(atKill).toHaveLength(4);
    // The kills fell inside the run, not after it.
    expect(atKill[2]).toBeLessThan(total);
    for (const r of replays) expect(await r.p.exited()).toBe(0);
    await sub.count(total);
    replays.forEach((r, i) => {
      expect(asReplayLines(ofStream(sub.predictions, r.id), offsets[i]!, HOP)).toBe(expected.get(r.id));
    });
    // Nothing more comes (no window twice): the partitions' outputs hold exactly the windows delivered.
    const client = new Redis(redis.url);
    let committed = 0;
    for (let p = 0; p < 16; p++) committed += await client.xlen(`braid:{${p}}:out`);
    client.disconnect();
    // Each window once, and each stream's end once (committed after its last window).
    expect(committed).toBe(total + replays.length);
    expect(sub.predictions.length).toBe(total);
    // `closed` came to the subscriber after each stream's last prediction.
    await expect.poll(() => sub.closedAt.size, { timeout: 30_000 }).toBe(replays.length);
    for (const r of replays) {
      const last = sub.predictions.findLastIndex((p) => p.streamId === r.id);
      expect(sub.closedAt.get(r.id), r.id).toBeGreaterThan(last);
    }
    // Some partition changed hands with a stream open on it: it was rebuilt, and its committed windows skipped.
    const takeovers = everyWorker.flatMap((w) => [
      ...w.log().matchAll(/"event":"partition_start"[^\n]*"rebuild":([1-9])/g),
    ]);
    expect(takeovers.length).toBeGreaterThan(0);
    // ...and at least one of those streams was carried on from its checkpoint's cut (GRU and aligner state), not
    // run again from its first entry: the kills fell mid-session, with windows of the session committed.
    const resumed = everyWorker.flatMap((w) => [
      ...w.log().matchAll(/"event":"partition_start"[^\n]*"resumed":([1-9])/g),
    ]);
    expect(resumed.length).toBeGreaterThan(0);
    sub.close();
  }, 120_000);

  it("trims an open stream's input behind its checkpoint, and a worker that takes over carries the stream on from there", async () => {
    redis = await startRedis();
    const gateway = await serveOn(['--redis', redis.url, '--backend', 'cpu-fused']);
    const first = await worker(redis.url, '--metrics-port', '0');
    const sub = await subscribeAll(gateway.url);
    const lines = expected.get('s1')!.split('\n').filter(Boolean).length;
    const replay = replayTo(gateway.url, 's1', '--speed', '1');
    const offset = await replayOffset(replay);
    const client = new Redis(redis.url);
    // Half way through the recording, the stream still open: its input is trimmed behind the checkpoint.
    await sub.count(Math.floor(lines / 2));
    const [added, length, head, field] = await Promise.all([
      client.get('braid:{9}:added'),
      client.xlen('braid:{9}:in'),
      client.xrange('braid:{9}:in', '-', '+', 'COUNT', 1),
      client.hget('braid:{9}:ckpt', 's:s1'),
    ]);
    expect(replay.child.exitCode).toBeNull();
    const [session] = JSON.parse(field!) as [
      {
        from: string;
        count: number;
        resume: { entry: string; refill: string | null; model: { state: string } };
      },
    ];
    expect(session.count).toBeGreaterThan(0);
    // The GRU state after the last committed window: hidden floats, base64.
    expect(Buffer.from(session.resume.model.state, 'base64').length % 4).toBe(0);
    // Entries before the oldest one a takeover would read again are gone; the session's first entry with them.
    expect(Number(added)).toBeGreaterThan(2 * length);
    const firstKept = head[0]![0];
    expect(compareIds(firstKept, session.from)).toBeGreaterThan(0);
    expect(compareIds(firstKept, session.resume.refill ?? session.resume.entry)).toBeLessThanOrEqual(0);
    // The worker's /metrics, scraped for real: it owns every partition, reads and commits.
    const before = await scrape(first);
    expect(metric(before, 'braid_worker_partitions_owned')).toBe(16);
    expect(metric(before, 'braid_worker_entries_read_total')).toBeGreaterThan(0);
    expect(metric(before, 'braid_worker_commits_total')).toBeGreaterThan(0);
    expect(metric(before, 'braid_worker_predictions_total')).toBeGreaterThan(0);
    expect(metric(before, 'braid_worker_lease_renewals_total')).toBeGreaterThan(0);
    expect(metric(before, 'braid_worker_takeovers_total')).toBe(16);
    expect(metric(before, 'braid_worker_fenced_commits_total')).toBe(0);
    expect(before).toMatch(/^braid_worker_partition_lag\{partition="9"\} \d+$/m);
    expect(before).toMatch(/^process_resident_memory_bytes \d+/m);

    // The owner dies mid-stream; its successor restores the stream from the checkpoint and reads from the cut.
    first.child.kill('SIGKILL');
    await first.exited();
    // The owner went on committing between the read above and the kill: the successor resumes from the last commit.
    const [atKill] = JSON.parse((await client.hget('braid:{9}:ckpt', 's:s1'))!) as [{ count: number }];
    expect(atKill.count).toBeGreaterThanOrEqual(session.count);
    const next = await worker(redis.url, '--metrics-port', '0');
    const start = await next.waitFor(/"event":"partition_start"[^\n]*"partition":9[^\n]*/, 30_000);
    expect(start[0]).toMatch(/"resumed":1/);
    const from = /"from":"([\d-]+)"/.exec(start[0])![1]!;
    expect(compareIds(from, session.from)).toBeGreaterThan(0);
    expect(await replay.exited()).toBe(0);
    await sub.count(lines);
    expect(asReplayLines(ofStream(sub.predictions, 's1'), offset, HOP)).toBe(expected.get('s1'));
    expect(sub.predictions.length).toBe(lines);
    // Once the stream ended, nothing of it is kept: its field is gone and its input trimmed to nothing.
    await expect.poll(() => client.hget('braid:{9}:ckpt', 's:s1'), { timeout: 10_000 }).toBeNull();
    expect(await client.xlen('braid:{9}:in')).toBe(0);
    const after = await scrape(next);
    expect(metric(after, 'braid_worker_streams_resumed_total')).toBe(1);
    expect(metric(after, 'braid_worker_streams_rebuilt_total')).toBe(0);
    expect(metric(after, 'braid_worker_predictions_total')).toBe(lines - atKill.count);
    expect(after).toMatch(/^braid_worker_partition_lag\{partition="9"\} 0$/m);
    client.disconnect();
    sub.close();
  }, 90_000);

  it('carries its partitions on, nothing rebuilt, when it stalls past its lease and nobody takes them meanwhile', async () => {
    redis = await startRedis();
    const gateway = await serveOn(['--redis', redis.url, '--backend', 'cpu-fused']);
    const only = await worker(redis.url, '--metrics-port', '0');
    const sub = await subscribeAll(gateway.url);
    const lines = expected.get('s1')!.split('\n').filter(Boolean).length;
    const replay = replayTo(gateway.url, 's1', '--speed', '1');
    const offset = await replayOffset(replay);
    const client = new Redis(redis.url);
    await sub.count(2);
    // A stall longer than the lease (a GC pause, a loaded machine, a VM migrated): the lease lapses in Redis.
    only.child.kill('SIGSTOP');
    await expect.poll(() => client.exists('braid:{9}:lease'), { timeout: 10_000 }).toBe(0);
    only.child.kill('SIGCONT');
    expect(await replay.exited()).toBe(0);
    await sub.count(lines);
    expect(asReplayLines(ofStream(sub.predictions, 's1'), offset, HOP)).toBe(expected.get('s1'));
    expect(sub.predictions.length).toBe(lines);
    // No token was handed out meanwhile, so none could commit: the worker takes its lease back and runs on.
    expect(only.log()).toMatch(/"event":"lease_reclaimed"[^\n]*"partition":9/);
    const after = await scrape(only);
    expect(metric(after, 'braid_worker_lease_reclaims_total')).toBeGreaterThan(0);
    expect(metric(after, 'braid_worker_lease_losses_total')).toBe(0);
    expect(metric(after, 'braid_worker_fenced_commits_total')).toBe(0);
    expect(metric(after, 'braid_worker_takeovers_total')).toBe(16);
    expect(metric(after, 'braid_worker_streams_rebuilt_total')).toBe(0);
    expect(metric(after, 'braid_worker_predictions_total')).toBe(lines);
    client.disconnect();
    sub.close();
  }, 90_000);

  it('refuses to start, with a clear error and exit code 1, when Redis is not there', async () => {
    const url = `redis://127.0.0.1:${await freePort()}`;
    const gateway = braid(['serve', '--port', '0', '--redis', url, '--backend', 'cpu-fused']);
    const w = braid(['worker', '--redis', url]);
    expect(await gateway.exited()).toBe(1);
    expect(await w.exited()).toBe(1);
    expect(gateway.log()).toMatch(/cannot reach Redis at 127\.0\.0\.1:\d+/);
    expect(w.log()).toMatch(/cannot reach Redis at 127\.0\.0\.1:\d+/);
  }, 60_000);

  it('refuses input while Redis is down, and resumes with nothing lost once it is back', async () => {
    redis = await startRedis();
    const gateway = await serveOn(['--redis', redis.url, '--backend', 'cpu-fused']);
    await worker(redis.url);
    const sub = await subscribeAll(gateway.url);
    const first = replayTo(gateway.url, 's1', '--speed', 'max');
    const offset = await replayOffset(first);
    expect(await first.exited()).toBe(0);
    await sub.count(expected.get('s1')!.split('\n').filter(Boolean).length);
    expect(asReplayLines(ofStream(sub.predictions, 's1'), offset, HOP)).toBe(expected.get('s1'));

    await redis.kill();
    await gateway.waitFor(/"event":"redis_lost"/);
    const errors: string[] = [];
    const producer = await connectProducer({
      url: gateway.url,
      streamId: 'during-outage',
      text: true,
      onError: (e) => errors.push(`${e.code}: ${e.message}`),
    });
    producer.sendText('hello');
    await expect.poll(() => errors.length, { timeout: 10_000 }).toBeGreaterThan(0);
    expect(errors[0]).toMatch(/^cluster_unavailable: Redis is unavailable, input refused/);
    await producer.close();

    await redis.restart();
    await gateway.waitFor(/"event":"redis_lost"[\s\S]*"event":"redis_ready"/);
    const before = sub.predictions.length;
    const second = replayTo(gateway.url, 'beta', '--speed', 'max');
    const offset2 = await replayOffset(second);
    expect(await second.exited()).toBe(0);
    await sub.count(before + expected.get('beta')!.split('\n').filter(Boolean).length);
    expect(asReplayLines(ofStream(sub.predictions, 'beta'), offset2, HOP)).toBe(expected.get('beta'));
    // The first run's commits survived the restart (appendonly yes, appendfsync always).
    const client = new Redis(redis.url);
    expect(await client.hget('braid:{9}:ckpt', 'partition')).toMatch(/"readCount":\d+/);
    client.disconnect();
    sub.close();
  }, 120_000);

  it('bounds what a partition holds behind the workers: input past the lag cap is refused and counted', async () => {
    redis = await startRedis();
    const gateway = await serveOn(['--redis', redis.url, '--backend', 'cpu-fused', '--lag-cap', '50']);
    // Refusals come back after a round trip to Redis: at a speed where the stream is still open to hear them.
    const replay = replayTo(gateway.url, 's1', '--speed', '4');
    expect(await replay.exited()).toBe(1);
    expect(replay.log()).toMatch(/cluster_backlog: partition 9 is \d+ entries behind \(cap 50\)/);
    const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    expect(metrics).toMatch(/braid_cluster_refused_total\{reason="cluster_backlog"\} [1-9]/);
    // /healthz says what the gateway sees: no worker owns anything, and partition 9 is at its cap.
    const health = async () => (await (await fetch(`${gateway.url}/healthz`)).json()).cluster;
    await expect.poll(async () => (await health()).maxLag, { timeout: 15_000 }).toBe(50);
    expect(await health()).toMatchObject({ redis: 'up', partitions: 16, workers: 0, unowned: 16 });
    expect(await (await fetch(`${gateway.url}/metrics`)).text()).toMatch(
      /braid_cluster_partition_lag\{partition="9"\} 50/,
    );
    const client = new Redis(redis.url);
    expect(await client.xlen('braid:{9}:in')).toBe(50);
    client.disconnect();
  }, 60_000);
});

describe.skipIf(!hasRedisCluster())('braid cluster on a real 3-node Redis Cluster', () => {
  it('spreads the partitions over the nodes and gives every window once, as a local replay does, through a SIGKILL', async () => {
    redisCluster = await startRedisCluster(3);
    const url = redisCluster.url;
    const gateway = await serveOn(['--redis', url, '--backend', 'cpu-fused']);
    expect(gateway.log()).toMatch(/"event":"gateway"[^\n]*"redisCluster":true/);
    const workers = await Promise.all([
      worker(url, '--metrics-port', '0'),
      worker(url, '--metrics-port', '0'),
    ]);
    expect(workers[1]!.log()).toMatch(/"event":"worker"[^\n]*"redisCluster":true/);
    const sub = await subscribeAll(gateway.url);
    // s1 is partition 9 (slot 10106), beta partition 7 (slot 1716): on two different nodes of the three.
    const ids = ['s1', 'beta'];
    const lines = ids.map((id) => expected.get(id)!.split('\n').filter(Boolean).length);
    const total = lines[0]! + lines[1]!;
    const replays = ids.map((id) => replayTo(gateway.url, id, '--speed', '1'));
    const offsets = await Promise.all(replays.map(replayOffset));
    // A third of the way in, the worker that owns partition 9 is killed: another takes it over on the cluster.
    await sub.count(Math.floor(total / 3));
    const client = new Cluster([{ host: '127.0.0.1', port: redisCluster.ports[0]! }]);
    const owner = (await client.get('braid:{9}:lease'))!.split('/')[0]!;
    const victim = workers.find((w) => w.log().includes(`"id":"${owner}"`))!;
    victim.child.kill('SIGKILL');
    const survivor = workers.find((w) => w !== victim)!;
    await survivor.waitFor(/"event":"partition_start"[^\n]*"partition":9[^\n]*"resumed":1/, 30_000);
    for (const r of replays) expect(await r.exited()).toBe(0);
    await sub.count(total);
    ids.forEach((id, i) => {
      expect(asReplayLines(ofStream(sub.predictions, id), offsets[i]!, HOP)).toBe(expected.get(id));
    });
    let committed = 0;
    for (let p = 0; p < 16; p++) committed += await client.xlen(`braid:{${p}}:out`);
    expect(committed).toBe(total + ids.length);
    expect(sub.predictions.length).toBe(total);
    // The data is spread: more than one node holds braid's keys.
    const sizes = await Promise.all(client.nodes('master').map((n) => n.dbsize()));
    expect(sizes.filter((n) => n > 0).length).toBeGreaterThan(1);
    // The survivor's /metrics asks each partition's node for its lag (one GET a slot): all read.
    const metrics = await scrape(survivor);
    expect(metric(metrics, 'braid_worker_partitions_owned')).toBe(16);
    expect(metrics).toMatch(/^braid_worker_partition_lag\{partition="9"\} 0$/m);
    expect(metric(metrics, 'braid_worker_streams_resumed_total')).toBeGreaterThanOrEqual(1);
    client.disconnect();
    sub.close();
  }, 120_000);
});
