import { from, Subject } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { collectEvents } from '../../src/align/aggregator.js';
import { alignWindows, createAlignment } from '../../src/align/align-windows.js';
import type { AlignOptions } from '../../src/align/options.js';
import {
  type AlignerSinks,
  type LateEvent,
  type RejectedInput,
  streamPhase,
  WindowAligner,
} from '../../src/align/window-aligner.js';
import { InvalidOptionError } from '../../src/core/errors.js';
import type { AnySourceEvent, Modality, StreamInput } from '../../src/core/events.js';
import type { Window } from '../../src/core/window.js';

type W = Window<readonly AnySourceEvent[]>;

let seqs = new Map<string, number>();
function ev(streamId: string, modality: Modality, time: number, seq?: number): AnySourceEvent {
  const key = `${streamId}/${modality}`;
  const s = seq ?? seqs.get(key) ?? 0;
  seqs.set(key, s + 1);
  switch (modality) {
    case 'audio':
      return {
        streamId,
        modality,
        time,
        seq: s,
        payload: { sampleRate: 16000, channels: 1, samples: new Int16Array(4) },
      };
    case 'video':
      return {
        streamId,
        modality,
        time,
        seq: s,
        payload: { format: 'gray', width: 2, height: 1, data: new Uint8Array(2) },
      };
    case 'text':
      return { streamId, modality, time, seq: s, payload: { text: `t${time}` } };
    case 'label':
      return { streamId, modality, time, seq: s, payload: { labels: { x: 1 } } };
  }
}

function harness(options: Partial<AlignOptions<readonly AnySourceEvent[]>> = {}) {
  seqs = new Map();
  const windows: W[] = [];
  const late: LateEvent[] = [];
  const rejected: RejectedInput[] = [];
  let now = 0;
  const sinks: AlignerSinks<readonly AnySourceEvent[]> = {
    window: (w) => windows.push(w),
    late: (l) => late.push(l),
    rejected: (r) => rejected.push(r),
  };
  const aligner = new WindowAligner(
    { size: 100, outOfOrderness: 0, aggregator: collectEvents, ...options },
    sinks,
    () => now,
  );
  return {
    aligner,
    windows,
    late,
    rejected,
    setNow: (ms: number) => {
      now = ms;
    },
  };
}

const times = (w: W, m: Modality) => (w.contents[m] ?? []).map((e) => e.time);

describe('WindowAligner: windows and watermarks', () => {
  it('closes a tumbling window once every source has passed its end', () => {
    const h = harness();
    h.aligner.push({ control: 'open', streamId: 's', modalities: ['audio', 'video'] });
    h.aligner.push(ev('s', 'audio', 10));
    h.aligner.push(ev('s', 'audio', 150));
    expect(h.windows).toHaveLength(0); // video has not passed 100 yet
    h.aligner.push(ev('s', 'video', 50));
    expect(h.windows).toHaveLength(0);
    h.aligner.push(ev('s', 'video', 100));
    expect(h.windows).toHaveLength(1);
    const w = h.windows[0]!;
    expect([w.index, w.start, w.end, w.closedBy]).toEqual([0, 0, 100, 'watermark']);
    expect(times(w, 'audio')).toEqual([10]);
    expect(times(w, 'video')).toEqual([50]);
    expect(w.present).toEqual({ audio: true, video: true, text: false, label: false });
    expect(w.counts.audio).toBe(1);
  });

  it('puts an event in every hopping window that covers it', () => {
    const h = harness({ size: 100, hop: 50 });
    for (const t of [10, 60, 120, 400]) h.aligner.push(ev('s', 'text', t));
    expect(h.windows.map((w) => [w.index, w.start, times(w, 'text')])).toEqual([
      [-1, -50, [10]],
      [0, 0, [10, 60]],
      [1, 50, [60, 120]],
      [2, 100, [120]],
    ]);
  });

  it('skips windows with no events and keeps the index, so gaps show', () => {
    const h = harness({ origin: 5 });
    for (const t of [10, 1_000_000, 1_000_200]) h.aligner.push(ev('s', 'audio', t));
    expect(h.windows.map((w) => [w.index, w.start])).toEqual([
      [0, 5],
      [9999, 999_905],
    ]);
  });

  it('waits out-of-orderness and sorts events by time whatever their arrival order', () => {
    const h = harness({ outOfOrderness: 30 });
    for (const t of [50, 20, 110, 90, 135]) h.aligner.push(ev('s', 'audio', t, t));
    expect(h.windows).toHaveLength(1);
    expect(times(h.windows[0]!, 'audio')).toEqual([20, 50, 90]);
  });

  it('waits for allowed lateness beyond the window end', () => {
    const h = harness({ allowedLateness: 40 });
    h.aligner.push(ev('s', 'audio', 10));
    h.aligner.push(ev('s', 'audio', 139));
    expect(h.windows).toHaveLength(0);
    h.aligner.push(ev('s', 'audio', 140));
    expect(h.windows).toHaveLength(1);
  });

  it('does not hold windows for non-gating label events', () => {
    const h = harness();
    h.aligner.push(ev('s', 'label', 5));
    h.aligner.push(ev('s', 'audio', 10));
    h.aligner.push(ev('s', 'audio', 120));
    expect(h.windows).toHaveLength(1);
    expect(times(h.windows[0]!, 'label')).toEqual([5]);
  });

  it('closes windows on a producer progress bound without waiting for a slow modality', () => {
    const h = harness({ outOfOrderness: 30 });
    h.aligner.push({ control: 'open', streamId: 's', modalities: ['audio', 'video'] });
    h.aligner.push(ev('s', 'video', 5));
    for (const t of [10, 60, 110, 160]) h.aligner.push(ev('s', 'audio', t));
    expect(h.windows).toHaveLength(0); // video's next frame has not come, and audio's watermark is 130
    h.aligner.push({ control: 'progress', streamId: 's', time: 170 });
    expect(h.windows.map((w) => [w.index, w.closedBy])).toEqual([[0, 'watermark']]);
    expect(times(h.windows[0]!, 'video')).toEqual([5]);
    expect(h.aligner.stats.progress).toBe(1);
    // A frame the producer promised not to send is late, not silently merged.
    h.aligner.push(ev('s', 'video', 90));
    expect(h.late.map((l) => l.event.time)).toEqual([90]);
  });

  it('gives each stream its own window phase when asked, the same in every run', () => {
    const h = harness({ phase: 'stream', size: 100 });
    for (const id of ['cam-1', 'cam-2']) {
      h.aligner.push(ev(id, 'audio', 1_000));
      h.aligner.push(ev(id, 'audio', 1_500));
    }
    const starts = h.windows.map((w) => [w.streamId, w.start - w.index * 100]);
    expect(starts).toEqual([
      ['cam-1', streamPhase('cam-1', 100)],
      ['cam-2', streamPhase('cam-2', 100)],
    ]);
    expect(streamPhase('cam-1', 100)).not.toBe(streamPhase('cam-2', 100));
    expect(streamPhase('cam-1', 100)).toBe(streamPhase('cam-1', 100));
    for (const w of h.windows) expect(times(w, 'audio')).toEqual([1_000]);
  });

  it('keeps streams independent', () => {
    const h = harness();
    h.aligner.push(ev('a', 'audio', 10));
    h.aligner.push(ev('b', 'audio', 10));
    h.aligner.push(ev('a', 'audio', 200));
    expect(h.windows.map((w) => w.streamId)).toEqual(['a']);
  });
});

describe('WindowAligner: late, rejected, reset, close', () => {
  it('sends an event for a closed window to the late output and counts it', () => {
    const h = harness();
    h.aligner.push({ control: 'open', streamId: 's', modalities: ['audio', 'video'] });
    h.aligner.push(ev('s', 'audio', 10));
    h.aligner.push(ev('s', 'audio', 250));
    h.aligner.push(ev('s', 'video', 230));
    expect(h.windows).toHaveLength(1);
    h.aligner.push({ control: 'reset', streamId: 's', modality: 'video' });
    h.aligner.push(ev('s', 'video', 40));
    expect(h.late.map((l) => l.event.time)).toEqual([40]);
    expect(h.late[0]!.closedUpTo).toBe(200);
    expect(h.aligner.stats.late).toBe(1);
    expect(h.aligner.stats.epochResets).toBe(1);
  });

  it('rejects timestamps that go back beyond the tolerance, with a counted reason, and goes on', () => {
    const h = harness({ outOfOrderness: 10 });
    h.aligner.push(ev('s', 'audio', 100));
    h.aligner.push(ev('s', 'audio', 95, 7));
    h.aligner.push(ev('s', 'audio', 80, 8));
    expect(h.rejected.map((r) => [r.reason, r.field])).toEqual([['non_monotonic', 'time']]);
    expect(h.rejected[0]!.message).toMatch(/s\/audio: time 80/);
    h.aligner.push(ev('s', 'audio', 300));
    expect(times(h.windows[0]!, 'audio')).toEqual([95]);
    expect(times(h.windows[1]!, 'audio')).toEqual([100]);
    expect(h.aligner.stats.rejected).toEqual({ non_monotonic: 1 });
  });

  it('accepts a new epoch after a reset without restarting', () => {
    const h = harness({ outOfOrderness: 0 });
    h.aligner.push(ev('s', 'audio', 1_050));
    h.aligner.push(ev('s', 'audio', 1_020, 1));
    expect(h.rejected.map((r) => r.reason)).toEqual(['non_monotonic']);
    h.aligner.push({ control: 'reset', streamId: 's', modality: 'audio' });
    h.aligner.push(ev('s', 'audio', 1_020, 50));
    expect(h.rejected).toHaveLength(1);
    expect(h.late).toHaveLength(0);
    h.aligner.push({ control: 'close', streamId: 's' });
    expect(times(h.windows[0]!, 'audio')).toEqual([1_020, 1_050]);
  });

  it('rejects bad events with a counted reason and keeps going', () => {
    const h = harness();
    h.aligner.push({ streamId: '', modality: 'audio', time: 1, seq: 0, payload: {} });
    h.aligner.push({ streamId: 's', modality: 'smell', time: 1, seq: 0, payload: {} });
    h.aligner.push({ ...ev('s', 'text', 5), time: Number.NaN });
    h.aligner.push({ ...ev('s', 'text', 5), time: 1e30 });
    h.aligner.push(ev('s', 'text', 5, 1));
    h.aligner.push(ev('s', 'text', 5, 1));
    h.aligner.push({
      streamId: 's',
      modality: 'text',
      time: 6,
      seq: 2,
      payload: { text: 'x'.repeat(5_000_000) },
    });
    h.aligner.push(ev('s', 'text', 500));
    expect(h.rejected.map((r) => r.reason)).toEqual([
      'missing_stream_id',
      'unknown_modality',
      'non_finite_time',
      'absurd_time',
      'duplicate',
      'oversized_payload',
    ]);
    expect(h.windows).toHaveLength(1);
  });

  it('flushes and frees a stream on close', () => {
    const h = harness();
    h.aligner.push(ev('s', 'audio', 10));
    h.aligner.push(ev('s', 'audio', 130));
    h.aligner.push({ control: 'close', streamId: 's' });
    expect(h.windows.map((w) => [w.index, w.closedBy])).toEqual([
      [0, 'watermark'],
      [1, 'flush'],
    ]);
    expect(h.aligner.streamIds).toEqual([]);
    expect(h.aligner.stats).toMatchObject({
      bufferedEvents: 0,
      bufferedBytes: 0,
      openStreams: 0,
      streamsClosed: 1,
    });
  });

  it('frees all state after 10k streams open and close', () => {
    const h = harness();
    for (let i = 0; i < 10_000; i++) {
      h.aligner.push(ev(`s${i}`, 'audio', 10));
      h.aligner.push({ control: 'close', streamId: `s${i}` });
    }
    expect(h.aligner.streamIds).toHaveLength(0);
    expect(h.aligner.stats).toMatchObject({
      bufferedEvents: 0,
      bufferedBytes: 0,
      openStreams: 0,
      windowsOut: 10_000,
    });
  });

  it('refuses streams beyond maxStreams', () => {
    const h = harness({ maxStreams: 2 });
    for (const s of ['a', 'b', 'c']) h.aligner.push(ev(s, 'text', 1));
    expect(h.rejected.map((r) => r.reason)).toEqual(['too_many_streams']);
  });
});

describe('WindowAligner: bounded buffers', () => {
  it('closes the oldest window early when a stream buffer is full, and counts it', () => {
    const h = harness({ maxStreamBufferEvents: 5 });
    h.aligner.push({ control: 'open', streamId: 's', modalities: ['audio', 'video'] });
    // video never comes: without a cap the audio would pile up for ever
    for (let t = 0; t < 1_000; t += 10) h.aligner.push(ev('s', 'audio', t));
    expect(h.aligner.stats.forcedCloses).toBeGreaterThan(0);
    expect(h.aligner.stats.bufferedEvents).toBeLessThanOrEqual(5);
    expect(h.windows.every((w) => w.closedBy === 'buffer_cap')).toBe(true);
    // nothing is lost silently: every event is in a window, still buffered, or on the late output
    const inWindows = h.windows.reduce((n, w) => n + w.counts.audio, 0);
    expect(h.late.length).toBeGreaterThan(0);
    expect(inWindows + h.aligner.stats.bufferedEvents + h.late.length).toBe(100);
  });

  it('bounds the total over all streams', () => {
    const h = harness({ maxTotalBufferBytes: 8 * 20, maxStreamBufferBytes: 1e9 });
    for (let t = 0; t < 100; t += 10)
      for (const s of ['a', 'b', 'c']) {
        h.aligner.push({ control: 'open', streamId: s, modalities: ['audio', 'video'] });
        h.aligner.push(ev(s, 'audio', t));
      }
    expect(h.aligner.stats.bufferedBytes).toBeLessThanOrEqual(160);
  });
});

describe('options', () => {
  it.each([
    [{ size: 0 }, 'size'],
    [{ size: 100, hop: 200 }, 'hop'],
    [{ size: 100, outOfOrderness: -1 }, 'outOfOrderness'],
    [{ size: 100, idleTimeout: 0 }, 'idleTimeout'],
    [{ size: 100, nonGating: ['smell'] }, 'nonGating'],
    [{ size: 100, phase: 'random' }, 'phase'],
    [{ size: 100, aggregator: {} }, 'aggregator'],
  ])('rejects %j naming the option', (opts, option) => {
    expect(() => createAlignment({ aggregator: collectEvents, ...(opts as object) } as never)).toThrow(
      InvalidOptionError,
    );
    try {
      createAlignment({ aggregator: collectEvents, ...(opts as object) } as never);
    } catch (error) {
      expect((error as InvalidOptionError).option).toBe(option);
    }
  });
});

describe('alignWindows operator', () => {
  it('flushes on completion and completes', async () => {
    seqs = new Map();
    const out: W[] = [];
    await new Promise<void>((resolve, reject) =>
      from([ev('s', 'audio', 10), ev('s', 'audio', 150)] as StreamInput[])
        .pipe(alignWindows({ size: 100, outOfOrderness: 0, aggregator: collectEvents }))
        .subscribe({ next: (w) => out.push(w), complete: resolve, error: reject }),
    );
    expect(out.map((w) => [w.index, w.closedBy])).toEqual([
      [0, 'watermark'],
      [1, 'flush'],
    ]);
  });

  it('exposes late and rejected side outputs and stats', () => {
    seqs = new Map();
    const alignment = createAlignment({ size: 100, outOfOrderness: 0, aggregator: collectEvents });
    const rejected: string[] = [];
    alignment.rejected$.subscribe((r) => rejected.push(r.reason));
    const input = new Subject<unknown>();
    input.pipe(alignment.align).subscribe();
    input.next(ev('s', 'audio', 300));
    input.next({ nonsense: true });
    input.next(ev('s', 'audio', 100, 9));
    expect(rejected).toEqual(['missing_stream_id', 'non_monotonic']);
    expect(alignment.stats().rejected).toEqual({ missing_stream_id: 1, non_monotonic: 1 });
    expect(alignment.openStreams()).toEqual(['s']);
    const closed: string[] = [];
    alignment.closed$.subscribe((id) => closed.push(id));
    input.next({ control: 'close', streamId: 's' });
    expect(closed).toEqual(['s']);
    expect(alignment.openStreams()).toEqual([]);
  });
});

describe('idle timeouts (marble tests on virtual time)', () => {
  const mk = (streamId: string, modality: Modality, time: number) => ev(streamId, modality, time);

  it('a stalled modality holds windows back for the idle timeout only, then is marked missing', () => {
    seqs = new Map();
    const scheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
    scheduler.run(({ hot, expectObservable }) => {
      const values = {
        o: { control: 'open', streamId: 's', modalities: ['audio', 'video'] } as StreamInput,
        a: mk('s', 'audio', 10),
        v: mk('s', 'video', 20),
        b: mk('s', 'audio', 120),
        c: mk('s', 'audio', 230),
      };
      // audio keeps coming; video sends once at 1 ms and then stalls. Idle timeout 50 ms (processing time).
      const input = hot('o a v b 7ms c', values);
      const windows = input.pipe(
        alignWindows({
          size: 100,
          outOfOrderness: 0,
          idleTimeout: 50_000,
          aggregator: collectEvents,
          scheduler,
        }),
      );
      expectObservable(windows, '^ 200ms !').toBe('52ms (xy)', {
        x: expect.objectContaining({ index: 0, closedBy: 'idle', missing: ['video'] }),
        y: expect.objectContaining({ index: 1, closedBy: 'idle', missing: ['video'] }),
      });
    });
  });

  it('an idle source holds windows again once it sends; its stragglers are late', () => {
    seqs = new Map();
    const scheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
    scheduler.run(({ hot, expectObservable }) => {
      const alignment = createAlignment({
        size: 100,
        outOfOrderness: 0,
        idleTimeout: 10_000,
        aggregator: collectEvents,
        scheduler,
      });
      const values = {
        o: { control: 'open', streamId: 's', modalities: ['audio', 'video'] } as StreamInput,
        a: mk('s', 'audio', 10),
        b: mk('s', 'audio', 150),
        v: mk('s', 'video', 50),
        w: mk('s', 'video', 160),
        c: mk('s', 'audio', 260),
        d: mk('s', 'audio', 400),
      };
      const input = hot('o a b 20ms v w c 100ms d', values);
      // video idle at 10 ms (window 0 closes without it); it resumes at 23 ms with a straggler for window 0 (late)
      // and holds window 1 until it stalls again at 34 ms; audio resumes at 126 ms and closes window 2.
      expectObservable(input.pipe(alignment.align), '^ 300ms !').toBe('10ms x 23ms y 91ms z', {
        x: expect.objectContaining({ index: 0, closedBy: 'idle', missing: ['video'] }),
        y: expect.objectContaining({ index: 1, closedBy: 'idle', missing: ['video'] }),
        z: expect.objectContaining({ index: 2, closedBy: 'idle', missing: ['video'] }),
      });
      expectObservable(alignment.late$, '^ 300ms !').toBe('23ms l', {
        l: expect.objectContaining({ event: values.v }),
      });
    });
  });
});
