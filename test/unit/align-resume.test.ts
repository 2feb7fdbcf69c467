import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { collectEvents } from '../../src/align/aggregator.js';
import { REFILL } from '../../src/align/stream-state.js';
import { WindowAligner } from '../../src/align/window-aligner.js';
import type { AnySourceEvent, StreamInput } from '../../src/core/events.js';
import type { Window } from '../../src/core/window.js';

/**
 * A stream carried on from a saved aligner state gives the windows the uninterrupted run gives: the state is exported
 * after any input, imported into a fresh aligner (JSON round trip), the inputs that may hold still-buffered events
 * (from the first event at or after the next window's start) are fed again as refills, and the rest as input. The
 * input is hostile on purpose: out of order beyond the bound (non-monotonic), late, duplicated, with progress bounds,
 * gaps, epoch resets, restarts, and a per-stream buffer cap small enough to force windows closed.
 */

const OOO = 30;
const ID = 'cam';

type Step =
  | { kind: 'event'; modality: 'audio' | 'video' | 'text'; advance: number; back: number }
  | { kind: 'dup' }
  | { kind: 'progress'; ahead: number }
  | { kind: 'gap'; length: number }
  | { kind: 'reset'; modality: 'audio' | 'video' }
  | { kind: 'restart' };

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 12,
    arbitrary: fc.record({
      kind: fc.constant('event' as const),
      modality: fc.constantFrom('audio' as const, 'video' as const, 'text' as const),
      advance: fc.integer({ min: 0, max: 40 }),
      back: fc.integer({ min: 0, max: 80 }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'dup' as const }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('progress' as const),
      ahead: fc.integer({ min: -20, max: 60 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('gap' as const), length: fc.integer({ min: 1, max: 90 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('reset' as const),
      modality: fc.constantFrom('audio' as const, 'video' as const),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'restart' as const }) },
);

function inputsOf(steps: readonly Step[]): StreamInput[] {
  const inputs: StreamInput[] = [{ control: 'open', streamId: ID, modalities: ['audio', 'video', 'text'] }];
  let clock = 1000;
  // Per modality, as producers count them: the aligner compares an audio frame with the frame of the seq before it.
  const seqs = { audio: 0, video: 0, text: 0 };
  let last: AnySourceEvent | undefined;
  for (const s of steps) {
    switch (s.kind) {
      case 'event': {
        clock += s.advance;
        const time = Math.max(0, clock - s.back);
        const base = { streamId: ID, time, seq: seqs[s.modality]++ };
        last =
          s.modality === 'audio'
            ? {
                ...base,
                modality: 'audio',
                // 1 ms of audio: times that advance by 0–40 µs overlap, and a stream's pace varies.
                payload: { sampleRate: 16000, channels: 1, samples: new Int16Array(16) },
              }
            : s.modality === 'video'
              ? {
                  ...base,
                  modality: 'video',
                  payload: { format: 'gray', width: 1, height: 1, data: new Uint8Array(1) },
                }
              : { ...base, modality: 'text', payload: { text: 't' } };
        inputs.push(last);
        break;
      }
      case 'dup':
        if (last) inputs.push({ ...last });
        break;
      case 'progress':
        inputs.push({ control: 'progress', streamId: ID, time: clock + s.ahead });
        break;
      case 'gap':
        inputs.push({ control: 'gap', streamId: ID, modality: 'audio', from: clock - s.length, to: clock });
        break;
      case 'reset':
        inputs.push({ control: 'reset', streamId: ID, modality: s.modality });
        break;
      case 'restart':
        inputs.push({ control: 'restart', streamId: ID });
        break;
    }
  }
  inputs.push({ control: 'close', streamId: ID });
  return inputs;
}

const summary = (w: Window<readonly AnySourceEvent[]>) => ({
  index: w.index,
  start: w.start,
  end: w.end,
  contents: Object.fromEntries(
    Object.entries(w.contents).map(([m, events]) => [m, events!.map((e) => [e.time, e.seq])]),
  ),
  missing: w.missing,
  partial: w.partial ?? false,
});

function aligner(size: number, hop: number, cap: number, out: ReturnType<typeof summary>[]) {
  return new WindowAligner<readonly AnySourceEvent[]>(
    {
      size,
      hop,
      phase: 'stream',
      outOfOrderness: OOO,
      nonGating: ['text'],
      maxStreamBufferEvents: cap,
      aggregator: collectEvents,
    },
    { window: (w) => out.push(summary(w)), late: () => {}, rejected: () => {} },
  );
}

describe('aligner state export, import and refill', () => {
  it('carries a stream on from any input with exactly the windows of the uninterrupted run', () => {
    fc.assert(
      fc.property(
        fc.array(step, { minLength: 1, maxLength: 120 }),
        fc.integer({ min: 10, max: 100 }),
        fc.constantFrom(1, 0.5),
        fc.integer({ min: 4, max: 200 }),
        fc.nat(),
        (steps, size, hopFraction, cap, at) => {
          const inputs = inputsOf(steps);
          const hop = Math.max(1, Math.floor(size * hopFraction));
          const whole: ReturnType<typeof summary>[] = [];
          const a = aligner(size, hop, cap, whole);
          for (const input of inputs) a.push(input);

          // The first run stops after input `cut`, saving its state (as JSON, like a checkpoint).
          const cut = at % (inputs.length - 1);
          const before: ReturnType<typeof summary>[] = [];
          const first = aligner(size, hop, cap, before);
          let sinceRestart = 0;
          for (let i = 0; i <= cut; i++) {
            first.push(inputs[i]);
            const input = inputs[i] as { control?: string };
            if (input.control === 'restart') sinceRestart = i + 1;
          }
          const saved = first.exportStream(ID);
          if (saved === undefined) return;
          const state = JSON.parse(JSON.stringify(saved));
          // What a checkpoint calls `refill`: the first event since the last restart at or after the next start.
          const nextStart = saved.nextStart ?? Number.NEGATIVE_INFINITY;
          let refill = cut + 1;
          for (let i = sinceRestart; i <= cut; i++) {
            const e = inputs[i] as { time?: number; control?: string };
            if (e.control === undefined && (e.time as number) >= nextStart) {
              refill = i;
              break;
            }
          }

          const after: ReturnType<typeof summary>[] = [];
          const second = aligner(size, hop, cap, after);
          second.importStream(state);
          for (let i = refill; i <= cut; i++) second.refill({ ...inputs[i], [REFILL]: true });
          for (let i = cut + 1; i < inputs.length; i++) second.push(inputs[i]);
          expect([...before, ...after]).toEqual(whole);
          // The audio frames compared across the cut as in the uninterrupted run.
          const audio = (x: WindowAligner<unknown>) => [x.stats.audioGaps, x.stats.audioOverlaps];
          const [gaps, overlaps] = audio(a);
          expect([audio(first)[0]! + audio(second)[0]!, audio(first)[1]! + audio(second)[1]!]).toEqual([
            gaps,
            overlaps,
          ]);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('refuses a state saved on another window grid', () => {
    const out: ReturnType<typeof summary>[] = [];
    const first = aligner(100, 100, 1000, out);
    first.push({ control: 'open', streamId: ID, modalities: ['text'] });
    first.push({ control: 'progress', streamId: ID, time: 5_000 });
    first.push({ streamId: ID, modality: 'text', time: 5_010, seq: 0, payload: { text: 'a' } });
    first.push({ control: 'progress', streamId: ID, time: 5_500 });
    const saved = first.exportStream(ID);
    expect(saved?.nextWindow).not.toBeNull();
    expect(() => aligner(200, 200, 1000, []).importStream(saved)).toThrow(/another window grid/);
    expect(() => aligner(100, 100, 1000, []).importStream({ ...saved, nextWindow: 'x' })).toThrow(
      /not an aligner state/,
    );
  });
});
