// Recording write and read-back throughput. Run: npx tsx bench/record.ts
// Streams each send audio at 100 frames/s (10 ms, 160 samples at 16 kHz), video at 15 fps (raw gray 64x48) and
// text at 1/s, as in bench/align.ts. Baseline, measured in the same run on the same file: @mcap/core's indexed
// reader iterating the raw messages with no decoding — the floor braid's reader builds on. Each case runs for both
// message encodings: protobuf (format version 2's default) and JSON (format version 1, still read).
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { McapIndexedReader } from '@mcap/core';
import { count, lastValueFrom } from 'rxjs';
import type { AnySourceEvent } from '../src/core/events.js';
import { loadDecompress } from '../src/record/decompress.js';
import { FileReadable } from '../src/record/file-io.js';
import { McapRecorder, readRecording, replayRecording } from '../src/record/index.js';

function makeEvents(streams: number, durationS: number): AnySourceEvent[] {
  const events: AnySourceEvent[] = [];
  const t0 = 1_700_000_000_000_000;
  for (let tick = 0; tick < durationS * 100; tick++) {
    const time = t0 + tick * 10_000;
    for (let s = 0; s < streams; s++) {
      const streamId = `stream-${s}`;
      // Content varies so zstd sees something like real signals, not runs of zeros.
      const samples = Int16Array.from({ length: 160 }, (_, k) =>
        Math.round(8000 * Math.sin((tick * 160 + k + s) / 9)),
      );
      events.push({
        streamId,
        modality: 'audio',
        time,
        seq: tick,
        payload: { sampleRate: 16000, channels: 1, samples },
      });
      if (tick % 20 === 0 || tick % 20 === 7 || tick % 20 === 13) {
        const frame = Uint8Array.from({ length: 64 * 48 }, (_, k) => (k + tick + s) & 0xff);
        const vt = t0 + Math.floor((tick * 10_000) / 66_667) * 66_667;
        const payload = { format: 'gray' as const, width: 64, height: 48, data: frame };
        events.push({ streamId, modality: 'video', time: vt, seq: tick, payload });
      }
      if (tick % 100 === 50)
        events.push({ streamId, modality: 'text', time, seq: tick, payload: { text: 'hello there' } });
    }
  }
  return events;
}

const payloadBytes = (events: readonly AnySourceEvent[]) =>
  events.reduce(
    (sum, e) =>
      sum +
      (e.modality === 'audio'
        ? e.payload.samples.byteLength
        : e.modality === 'video'
          ? e.payload.data.byteLength
          : e.modality === 'text'
            ? e.payload.text.length
            : 0),
    0,
  );

interface Timing {
  /** Wall seconds and CPU seconds (user + system of this process), each the best of five runs after a warm-up. */
  readonly wall: number;
  readonly cpu: number;
}

/**
 * Best of five, after one warm-up, in wall time and in CPU time: on a shared machine the wall time of a run depends
 * on what else runs, its CPU time much less, so the ratios are read from CPU time.
 */
async function best(run: () => Promise<unknown>): Promise<Timing> {
  await run();
  let wall = Number.POSITIVE_INFINITY;
  let cpu = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    const c = process.cpuUsage();
    await run();
    const used = process.cpuUsage(c);
    wall = Math.min(wall, (performance.now() - t) / 1000);
    cpu = Math.min(cpu, (used.user + used.system) / 1e6);
  }
  return { wall, cpu };
}

async function rawIndexed(path: string): Promise<number> {
  const readable = await FileReadable.open(path);
  const reader = await McapIndexedReader.Initialize({
    readable,
    decompressHandlers: await loadDecompress(),
  });
  let n = 0;
  for await (const _ of reader.readMessages()) n++;
  await readable.close();
  return n;
}

async function readAll(path: string): Promise<number> {
  let n = 0;
  for await (const _ of readRecording(path, { onWarning: () => {} })) n++;
  return n;
}

const dir = mkdtempSync(join(tmpdir(), 'braid-bench-record-'));
const rows: string[] = [];

/** Writes the file of one case (best of five writes) and gives what the read cases need: no events stay in memory. */
async function writeCase(streams: number, durationS: number, encoding: 'protobuf' | 'json') {
  const events = makeEvents(streams, durationS);
  const path = join(dir, `s${streams}-${encoding}.mcap`);
  const write = await best(async () => {
    const recorder = await McapRecorder.create(path, { overwrite: true, encoding });
    // Await every 1000th write, as a live recorder keeps up with its input, so the bounded queue never fills.
    let i = 0;
    for (const e of events) {
      const written = recorder.write(e, e.time);
      if (++i % 1000 === 0) await written;
    }
    await recorder.close();
  });
  const cut = join(dir, `s${streams}-${encoding}-cut.mcap`);
  writeFileSync(cut, readFileSync(path).subarray(0, -30));
  return {
    path,
    cut,
    write,
    count: events.length,
    mb: payloadBytes(events) / 1e6,
    fileMb: statSync(path).size / 1e6,
  };
}

/**
 * The read cases of one file, each the best of five, run in turns (raw, braid, raw, braid...) so that a change in
 * the machine's load between them touches the baseline and braid's reader alike.
 */
async function readCases(path: string, cut: string): Promise<[string, Timing][]> {
  const cases: [string, () => Promise<unknown>][] = [
    ['baseline: McapIndexedReader raw messages', () => rawIndexed(path)],
    ['readRecording (indexed)', () => readAll(path)],
    ['readRecording (no summary: streamed twice)', () => readAll(cut)],
    ['replayRecording speed max', () => lastValueFrom(replayRecording(path, { speed: 'max' }).pipe(count()))],
  ];
  const timings = cases.map(() => ({ wall: Number.POSITIVE_INFINITY, cpu: Number.POSITIVE_INFINITY }));
  for (const [, run] of cases) await run();
  for (let round = 0; round < 7; round++)
    for (const [i, [, run]] of cases.entries()) {
      const t = performance.now();
      const c = process.cpuUsage();
      await run();
      const used = process.cpuUsage(c);
      const timing = timings[i]!;
      timing.wall = Math.min(timing.wall, (performance.now() - t) / 1000);
      timing.cpu = Math.min(timing.cpu, (used.user + used.system) / 1e6);
    }
  return cases.map(([name], i) => [name, timings[i]!]);
}

try {
  for (const [streams, durationS] of [
    [1, 120],
    [64, 4],
  ] as const)
    for (const encoding of ['protobuf', 'json'] as const) {
      const file = await writeCase(streams, durationS, encoding);
      const cases: [string, Timing][] = [
        [`write (McapRecorder, ${encoding}, zstd)`, file.write],
        ...(await readCases(file.path, file.cut)),
      ];
      const base = cases[1]![1];
      for (const [name, t] of cases)
        rows.push(
          `| ${streams} | ${encoding} | ${name} | ${file.count.toLocaleString('en')} | ${file.fileMb.toFixed(1)} | ${Math.round(file.count / t.cpu).toLocaleString('en')} | ${(file.mb / t.cpu).toFixed(1)} | ${(base.cpu / t.cpu).toFixed(2)} | ${(base.wall / t.wall).toFixed(2)} |`,
        );
    }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(
  '| streams | encoding | case | events | file MB | events per CPU-s | payload MB per CPU-s | vs baseline (CPU) | vs baseline (wall) |',
);
console.log('|---|---|---|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
