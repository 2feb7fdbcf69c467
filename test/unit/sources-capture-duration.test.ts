import { Subject, VirtualTimeScheduler } from 'rxjs';
import { describe, expect, it } from 'vitest';
import type { StreamInput } from '../../src/core/events.js';
import { captureFor } from '../../src/sources/capture-duration.js';

const audio = (time: number): StreamInput => ({
  streamId: 's',
  modality: 'audio',
  time,
  seq: time,
  payload: { sampleRate: 16000, channels: 1, samples: new Int16Array(1) },
});
const text = (time: number): StreamInput => ({
  streamId: 's',
  modality: 'text',
  time,
  seq: time,
  payload: { text: 'x' },
});

function collect(session: ReturnType<typeof captureFor>) {
  const got: StreamInput[] = [];
  const state = { complete: false };
  session.subscribe({ next: (i) => got.push(i), complete: () => (state.complete = true) });
  return { got, state };
}

describe('captureFor: a session of a given length in capture time', () => {
  it("keeps each source's first span, cuts it at its first event past the end, completes when all dense ones are cut", () => {
    const a = new Subject<StreamInput>();
    const v = new Subject<StreamInput>();
    const t = new Subject<StreamInput>();
    const { got, state } = collect(
      captureFor(
        [
          { input$: a, dense: true },
          { input$: v, dense: true },
          { input$: t, dense: false },
        ],
        1000,
        5000,
        new VirtualTimeScheduler(),
      ),
    );
    a.next(audio(5000)); // each source's span starts at its own first event: audio ends at 6000
    v.next(audio(7000)); // the camera started later: it ends at 8000
    t.next(text(5500));
    a.next(audio(6000)); // audio is done
    a.next(audio(5999)); // nothing after a source's cut is kept
    v.next(audio(7990));
    expect(state.complete).toBe(false);
    v.next(audio(8000));
    expect(state.complete).toBe(true);
    expect(got.map((i) => ('time' in i ? i.time : -1))).toEqual([5000, 7000, 5500, 7990]);
    expect(a.observed || v.observed || t.observed).toBe(false);
  });

  it('counts a source that ends early as done', () => {
    const a = new Subject<StreamInput>();
    const v = new Subject<StreamInput>();
    const { state } = collect(
      captureFor(
        [
          { input$: a, dense: true },
          { input$: v, dense: true },
        ],
        1000,
      ),
    );
    a.next(audio(0));
    a.complete();
    v.next(audio(500)); // its span: 500 to 1500
    v.next(audio(1000));
    expect(state.complete).toBe(false);
    v.next(audio(1500));
    expect(state.complete).toBe(true);
  });

  it('ends a silent session after the duration plus a grace period of wall time', () => {
    const scheduler = new VirtualTimeScheduler();
    const a = new Subject<StreamInput>();
    const { got, state } = collect(captureFor([{ input$: a, dense: true }], 2_000_000, 3000, scheduler));
    a.next({ control: 'progress', streamId: 's', time: 0 });
    scheduler.maxFrames = 4999;
    scheduler.flush();
    expect(state.complete).toBe(false);
    scheduler.maxFrames = Number.POSITIVE_INFINITY;
    scheduler.flush();
    expect(state.complete).toBe(true);
    expect(got).toEqual([{ control: 'progress', streamId: 's', time: 0 }]);
  });
});
