import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { collectEvents } from '../../src/align/aggregator.js';
import { streamPhase, WindowAligner } from '../../src/align/window-aligner.js';
import type { AnySourceEvent, Modality, StreamInput } from '../../src/core/events.js';
import type { Window } from '../../src/core/window.js';

/**
 * Output depends on timestamps only: for any interleaving of the same events (each source's own order kept) every
 * stream's windows are identical — and equal to a brute-force reference that puts each event in every window whose
 * [start, end) covers it. This is what makes a replay give exactly the live predictions.
 */

const MODALITIES: Modality[] = ['audio', 'video', 'text', 'label'];
const OUT_OF_ORDER = 15;

interface Scenario {
  size: number;
  hop: number;
  origin: number;
  phase: 'aligned' | 'stream';
  sources: AnySourceEvent[][];
  streams: Map<string, Modality[]>;
}

/** A source's times: increasing with gaps (some very long: a camera off for a while), jittered within the tolerance. */
const sourceTimes = fc
  .array(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 20 }), fc.boolean()), {
    minLength: 1,
    maxLength: 40,
  })
  .map((steps) => {
    const times: number[] = [];
    let base = 0;
    let max = Number.NEGATIVE_INFINITY;
    for (const [step, jitter, gap] of steps) {
      base += step + (gap && step > 35 ? 400 : 0);
      // Jitter backwards but never further than the tolerance below the highest time seen so far.
      const t = Math.max(base - jitter, max - OUT_OF_ORDER, 0);
      times.push(t);
      max = Math.max(max, t);
    }
    // (time, seq) must be unique per source: equal times get distinct seqs below.
    return times;
  });

const scenario: fc.Arbitrary<Scenario> = fc
  .record({
    size: fc.integer({ min: 5, max: 120 }),
    hopFraction: fc.constantFrom(1, 1, 0.5, 0.34),
    origin: fc.integer({ min: -50, max: 50 }),
    phase: fc.constantFrom('aligned' as const, 'stream' as const),
    streams: fc.array(
      fc.record({
        modalities: fc.subarray(MODALITIES, { minLength: 1 }),
        start: fc.integer({ min: 0, max: 300 }),
      }),
      { minLength: 1, maxLength: 4 },
    ),
  })
  .chain(({ size, hopFraction, origin, phase, streams }) => {
    const hop = Math.max(1, Math.floor(size * hopFraction));
    const keys = streams.flatMap((s, i) =>
      s.modalities.map((m) => ({ streamId: `s${i}`, modality: m, start: s.start })),
    );
    return fc.tuple(...keys.map(() => sourceTimes)).map((allTimes) => {
      const sources = keys.map((k, i) =>
        allTimes[i]!.map((t, seq): AnySourceEvent => {
          const time = k.start + t;
          switch (k.modality) {
            case 'audio':
              return {
                streamId: k.streamId,
                modality: 'audio',
                time,
                seq,
                payload: { sampleRate: 16000, channels: 1, samples: new Int16Array(1) },
              };
            case 'video':
              return {
                streamId: k.streamId,
                modality: 'video',
                time,
                seq,
                payload: { format: 'gray', width: 1, height: 1, data: new Uint8Array(1) },
              };
            case 'text':
              return { streamId: k.streamId, modality: 'text', time, seq, payload: { text: 'x' } };
            case 'label':
              return { streamId: k.streamId, modality: 'label', time, seq, payload: { labels: { y: 1 } } };
            default:
              throw new Error(`unknown modality ${k.modality}`);
          }
        }),
      );
      const streamMap = new Map(streams.map((s, i) => [`s${i}`, s.modalities]));
      return { size, hop, origin, phase, sources, streams: streamMap };
    });
  });

/** Merges the sources in an order drawn from `picks`, keeping each source's own order. */
function interleave(sources: AnySourceEvent[][], picks: number[]): AnySourceEvent[] {
  const cursors = sources.map(() => 0);
  const out: AnySourceEvent[] = [];
  let p = 0;
  for (;;) {
    const open = cursors.map((c, i) => (c < sources[i]!.length ? i : -1)).filter((i) => i >= 0);
    if (open.length === 0) return out;
    const i = open[(picks[p++ % Math.max(1, picks.length)] ?? 0) % open.length]!;
    out.push(sources[i]![cursors[i]!++]!);
  }
}

type Summary = [number, number, number, Record<string, [number, number][]>];

function run(s: Scenario, events: AnySourceEvent[]): Map<string, Summary[]> {
  const out = new Map<string, Summary[]>();
  const aligner = new WindowAligner(
    {
      size: s.size,
      hop: s.hop,
      origin: s.origin,
      phase: s.phase,
      outOfOrderness: OUT_OF_ORDER,
      nonGating: [],
      aggregator: collectEvents,
    },
    {
      window: (w: Window<readonly AnySourceEvent[]>) => {
        const contents: Record<string, [number, number][]> = {};
        for (const [m, evs] of Object.entries(w.contents)) contents[m] = evs!.map((e) => [e.time, e.seq]);
        const list = out.get(w.streamId) ?? [];
        list.push([w.index, w.start, w.end, contents]);
        out.set(w.streamId, list);
      },
      late: (l) => {
        throw new Error(`unexpected late event ${JSON.stringify(l.event.time)}`);
      },
      rejected: (r) => {
        throw new Error(`unexpected rejection ${r.message}`);
      },
    },
  );
  for (const [streamId, modalities] of s.streams)
    aligner.push({ control: 'open', streamId, modalities } satisfies StreamInput);
  for (const e of events) aligner.push(e);
  aligner.flushAll();
  return out;
}

function reference(s: Scenario): Map<string, Summary[]> {
  const byStream = new Map<string, AnySourceEvent[]>();
  for (const e of s.sources.flat()) byStream.set(e.streamId, [...(byStream.get(e.streamId) ?? []), e]);
  const out = new Map<string, Summary[]>();
  for (const [streamId, events] of byStream) {
    const origin = s.origin + (s.phase === 'stream' ? streamPhase(streamId, s.hop) : 0);
    const indices = new Set<number>();
    for (const e of events) {
      const kMin = Math.floor((e.time - s.size - origin) / s.hop) + 1;
      const kMax = Math.floor((e.time - origin) / s.hop);
      for (let k = kMin; k <= kMax; k++) indices.add(k);
    }
    const windows: Summary[] = [...indices]
      .sort((a, b) => a - b)
      .map((k) => {
        const start = origin + k * s.hop;
        const end = start + s.size;
        const contents: Record<string, [number, number][]> = {};
        for (const m of MODALITIES) {
          const inWindow = events
            .filter((e) => e.modality === m && e.time >= start && e.time < end)
            .sort((a, b) => a.time - b.time || a.seq - b.seq)
            .map((e): [number, number] => [e.time, e.seq]);
          if (inWindow.length > 0) contents[m] = inWindow;
        }
        return [k, start, end, contents];
      });
    out.set(streamId, windows);
  }
  return out;
}

describe('alignment depends on timestamps only (property)', () => {
  it('gives every stream the reference windows for any interleaving of its sources', () => {
    fc.assert(
      fc.property(scenario, fc.array(fc.nat(), { minLength: 1, maxLength: 64 }), (s, picks) => {
        const expected = reference(s);
        expect(run(s, interleave(s.sources, picks))).toEqual(expected);
      }),
      { numRuns: 3000 },
    );
  });

  it('gives identical windows for two different interleavings of the same events', () => {
    fc.assert(
      fc.property(scenario, fc.array(fc.nat()), fc.array(fc.nat()), (s, a, b) => {
        expect(run(s, interleave(s.sources, a))).toEqual(run(s, interleave(s.sources, b)));
      }),
      { numRuns: 1000 },
    );
  });
});
