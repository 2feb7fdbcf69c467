import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { collectEvents } from '../../src/align/aggregator.js';
import { SourceBuffer } from '../../src/align/source-buffer.js';
import { WindowAligner } from '../../src/align/window-aligner.js';
import type { AnySourceEvent, Modality, StreamInput } from '../../src/core/events.js';
import { mulberry32 } from '../../src/core/random.js';

/**
 * The aligner keeps running totals of what it buffers (per stream and overall) so that caps cost nothing to check.
 * Those totals must equal what the buffers really hold at every moment, however long the run: a drift once made
 * every stream degrade after ~20,000 events (a count taken after compaction came out negative). These tests drive
 * long random runs — out-of-order events, duplicates, late and non-monotonic ones, progress bounds, resets, closes,
 * buffer caps and many compactions — and audit the totals against a recount of the buffers.
 */

const MODALITIES: Modality[] = ['audio', 'video', 'text', 'label'];

function payloadFor(modality: Modality, rand: () => number): AnySourceEvent['payload'] {
  switch (modality) {
    case 'audio':
      return { sampleRate: 16000, channels: 1, samples: new Int16Array(1 + Math.floor(rand() * 160)) };
    case 'video': {
      const width = 1 + Math.floor(rand() * 8);
      return { format: 'gray', width, height: 2, data: new Uint8Array(width * 2) };
    }
    case 'text':
      return { text: 'x'.repeat(Math.floor(rand() * 20)) };
    case 'label':
      return { labels: { y: rand() < 0.5 ? 0 : 1 } };
  }
}

interface RunSettings {
  seed: number;
  events: number;
  streams: number;
  maxStreamBufferEvents: number;
  auditEvery: number;
}

/** Drives one long random run and audits the accounting every `auditEvery` inputs and at the end. */
function auditedRun(settings: RunSettings): {
  windows: number;
  forced: number;
  late: number;
  audits: number;
} {
  const rand = mulberry32(settings.seed);
  let windows = 0;
  let audits = 0;
  const aligner = new WindowAligner(
    {
      size: 500,
      hop: rand() < 0.5 ? 500 : 250,
      outOfOrderness: 40,
      maxStreamBufferEvents: settings.maxStreamBufferEvents,
      maxStreamBufferBytes: 1 << 20,
      nonGating: ['text', 'label'],
      aggregator: collectEvents,
    },
    { window: () => void windows++, late: () => {}, rejected: () => {} },
  );
  const audit = () => {
    const { counted, recounted } = aligner.bufferAccounting();
    expect(counted).toEqual(recounted);
    audits++;
  };
  interface Source {
    streamId: string;
    modality: Modality;
    time: number;
    seq: number;
    last?: AnySourceEvent;
  }
  const sources: Source[] = [];
  const open = (i: number) => {
    const modalities = MODALITIES.filter(() => rand() < 0.7);
    if (modalities.length === 0) modalities.push('audio');
    const streamId = `s${i}`;
    aligner.push({ control: 'open', streamId, modalities } satisfies StreamInput);
    for (let j = sources.length - 1; j >= 0; j--) if (sources[j]!.streamId === streamId) sources.splice(j, 1);
    const start = Math.floor(rand() * 10_000);
    for (const modality of modalities) sources.push({ streamId, modality, time: start, seq: 0 });
  };
  for (let i = 0; i < settings.streams; i++) open(i);

  for (let n = 0; n < settings.events; n++) {
    const roll = rand();
    const source = sources[Math.floor(rand() * sources.length)]!;
    if (roll < 0.002) {
      aligner.push({ control: 'close', streamId: source.streamId });
      open(Number(source.streamId.slice(1)));
    } else if (roll < 0.004) {
      aligner.push({ control: 'reset', streamId: source.streamId, modality: source.modality });
    } else if (roll < 0.02) {
      aligner.push({ control: 'progress', streamId: source.streamId, time: source.time - 100 });
    } else if (roll < 0.025 && source.last) {
      aligner.push(source.last); // an exact duplicate: refused, never buffered twice
    } else {
      // Mostly forward, sometimes jittered back within (or, rarely, beyond) the out-of-orderness; bursts far ahead
      // make windows wait, then late events for closed ones.
      const r = rand();
      const step = r < 0.01 ? 5_000 : r < 0.1 ? -Math.floor(rand() * 60) : Math.floor(rand() * 30);
      const time = Math.max(0, source.time + step);
      if (step >= 0) source.time = time;
      const event = {
        streamId: source.streamId,
        modality: source.modality,
        time,
        seq: source.seq++,
        payload: payloadFor(source.modality, rand),
      } as AnySourceEvent;
      source.last = event;
      aligner.push(event);
    }
    if (n % settings.auditEvery === 0) audit();
  }
  audit();
  aligner.flushAll();
  audit();
  const { counted } = aligner.bufferAccounting();
  expect(counted).toEqual({ events: 0, bytes: 0, streams: {} });
  return { windows, forced: aligner.stats.forcedCloses, late: aligner.stats.late, audits };
}

describe('aligner buffer accounting', () => {
  it('a source buffer reports what it released, also across a compaction', () => {
    const buffer = new SourceBuffer();
    for (let i = 0; i < 5000; i++)
      buffer.insert({
        streamId: 's',
        modality: 'audio',
        time: i,
        seq: i,
        payload: { sampleRate: 16000, channels: 1, samples: new Int16Array(2) },
      });
    expect(buffer.releaseBefore(3000)).toBe(3000); // compacts: the head moves back to 0
    expect(buffer.size).toBe(2000);
    expect(buffer.recount()).toEqual({ events: 2000, bytes: 8000 });
    expect(buffer.bytes).toBe(8000);
    expect(buffer.releaseBefore(4500)).toBe(1500);
    expect(buffer.recount()).toEqual({ events: 500, bytes: 2000 });
  });

  it('lets go of the events it released at once, not at its next compaction', async () => {
    // A released slot once kept its event (and payload) until the array was compacted, after more than 1,024 of them:
    // ~20 s of every stream's audio frames lived on into the old generation and set off a major GC every second.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const buffer = new SourceBuffer();
    const frames: WeakRef<Int16Array>[] = [];
    for (let i = 0; i < 40; i++) {
      const samples = new Int16Array(320);
      frames.push(new WeakRef(samples));
      buffer.insert({
        streamId: 's',
        modality: 'audio',
        time: i,
        seq: i,
        payload: { sampleRate: 16000, channels: 1, samples },
      });
    }
    expect(buffer.releaseBefore(30)).toBe(30); // too few to compact
    await new Promise((resolve) => setImmediate(resolve)); // a WeakRef holds its target until the job that made it ends
    gc();
    expect(frames.filter((f, i) => i < 30 && f.deref() !== undefined)).toHaveLength(0);
    expect(frames.filter((f, i) => i >= 30 && f.deref() !== undefined)).toHaveLength(10);
    expect(buffer.range(0, 40).map((e) => e.seq)).toEqual([30, 31, 32, 33, 34, 35, 36, 37, 38, 39]);
  });

  it('stays exact over a long run with many compactions (300,000 inputs)', () => {
    const result = auditedRun({
      seed: 12,
      events: 300_000,
      streams: 4,
      maxStreamBufferEvents: 20_000,
      auditEvery: 997,
    });
    expect(result.windows).toBeGreaterThan(1000);
    expect(result.late).toBeGreaterThan(0);
    expect(result.audits).toBeGreaterThan(300);
  });

  it('stays exact for any seed, stream count and buffer cap (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 50, max: 4000 }),
        (seed, streams, maxStreamBufferEvents) => {
          const result = auditedRun({
            seed,
            events: 25_000,
            streams,
            maxStreamBufferEvents,
            auditEvery: 211,
          });
          expect(result.audits).toBeGreaterThan(100);
        },
      ),
      { numRuns: 12 },
    );
  });
});
