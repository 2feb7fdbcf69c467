import { Subject } from 'rxjs';
import { describe, expect, it } from 'vitest';
import type { Prediction } from '../../src/core/window.js';
import { createPredictionOrder } from '../../src/pipeline/prediction-order.js';
import { StreamLifecycle, type StreamMark } from '../../src/pipeline/stream-lifecycle.js';

const p = (streamId: string, windowEnd: number): Prediction => ({
  streamId,
  windowIndex: windowEnd,
  windowStart: windowEnd - 1,
  windowEnd,
  scores: {},
  present: { audio: true, video: false, text: false, label: false },
});

describe('StreamLifecycle', () => {
  it('marks a stream open at its first input and ended after its last window is out, then forgets it', () => {
    const marks: string[] = [];
    const life = new StreamLifecycle((m) => marks.push(`${m.state} ${m.streamId}`));
    life.input('a', 'open');
    life.input('a');
    life.window('a');
    life.window('a');
    life.input('a', 'close');
    life.closed('a');
    expect(marks).toEqual(['open a']);
    life.done('a');
    expect(marks).toEqual(['open a']);
    life.done('a');
    expect(marks).toEqual(['open a', 'end a']);
    expect(life.size).toEqual({ open: 0, pending: 0, windowsInFlight: 0 });
    // A stream with nothing in flight ends as it closes.
    life.input('b');
    life.closed('b');
    expect(marks.slice(2)).toEqual(['open b', 'end b']);
  });

  it('ends the first life of a stream that opened again before its last window was out', () => {
    const marks: string[] = [];
    const life = new StreamLifecycle((m) => marks.push(`${m.state} ${m.streamId}`));
    life.input('a', 'open');
    life.window('a');
    life.input('a', 'close');
    life.closed('a');
    life.input('a', 'open'); // the next pass of a loop, read before the model caught up
    life.window('a');
    life.done('a');
    expect(marks).toEqual(['open a', 'open a', 'end a']);
    life.done('a');
    expect(marks).toEqual(['open a', 'open a', 'end a']);
    expect(life.size).toEqual({ open: 1, pending: 0, windowsInFlight: 0 });
  });
});

describe('createPredictionOrder', () => {
  function harness() {
    const order = createPredictionOrder();
    const input = new Subject<Prediction>();
    const out: string[] = [];
    input.pipe(order.operator).subscribe((x) => out.push(`${x.streamId}@${x.windowEnd}`));
    const mark = (streamId: string, state: StreamMark['state']) => order.mark({ streamId, state });
    return { order, input, out, mark };
  }

  it('orders by window end, then stream, holding each prediction until every open stream is as far', () => {
    const { input, out, mark } = harness();
    mark('b', 'open');
    mark('a', 'open');
    input.next(p('b', 20));
    input.next(p('b', 30));
    expect(out).toEqual([]);
    input.next(p('a', 20));
    expect(out).toEqual(['a@20', 'b@20']);
    input.next(p('a', 40));
    expect(out).toEqual(['a@20', 'b@20', 'b@30']);
    input.complete();
    expect(out).toEqual(['a@20', 'b@20', 'b@30', 'a@40']);
  });

  it('stops waiting for a stream once it has ended, and never waits for one that never opened', () => {
    const { order, input, out, mark } = harness();
    mark('a', 'open');
    mark('b', 'open');
    input.next(p('a', 10));
    input.next(p('a', 20));
    expect(out).toEqual([]);
    mark('b', 'end'); // b had nothing after 10 (or nothing at all in the range)
    expect(out).toEqual(['a@10', 'a@20']);
    expect(order.held()).toEqual({ predictions: 0, streams: 1 });
    mark('a', 'end');
    expect(order.held()).toEqual({ predictions: 0, streams: 0 });
  });

  it('keeps following a stream opened again before its first life ended', () => {
    const { input, out, mark } = harness();
    mark('a', 'open');
    mark('b', 'open');
    input.next(p('a', 10));
    input.next(p('b', 10));
    mark('a', 'open'); // next pass of a loop
    mark('a', 'end'); // the first pass's end: a is still open
    input.next(p('b', 30));
    expect(out).toEqual(['a@10', 'b@10']);
    input.next(p('a', 30));
    expect(out).toEqual(['a@10', 'b@10', 'a@30', 'b@30']);
  });
});
