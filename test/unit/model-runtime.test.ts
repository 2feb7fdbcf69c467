import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { firstValueFrom, from, lastValueFrom, Observable, Subject, tap, toArray } from 'rxjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  BraidError,
  emptyModalityRecord,
  InvalidOptionError,
  type Prediction,
} from '../../src/core/index.js';
import { seconds } from '../../src/core/time.js';
import { modelDims, parseModelConfig } from '../../src/model/config.js';
import { FusedStepKernel } from '../../src/model/fused-kernel.js';
import { type PredictInput, predictWindows } from '../../src/model/predict-windows.js';
import { type FusedWindow, ModelRuntime, type RuntimeOptions } from '../../src/model/runtime.js';
import { decodeFloats, encodeFloats, type ModelStreamState } from '../../src/model/state-store.js';
import type { StepKernel } from '../../src/model/step-kernel.js';
import { TfStepKernel } from '../../src/model/tf-kernel.js';
import { createModel, mulberry32, randomWeights } from '../../src/model/weights.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const config = parseModelConfig({
  inputLayout: { audio: 6, video: 3, text: 2, mask: 3 },
  encoderUnits: { audio: 4, video: 3, text: 2 },
  hidden: 9,
  cell: 'gru',
  labels: ['a', 'b', 'c'],
  head: 'sigmoid',
  featureConfig: null,
  normalization: { mean: new Array(14).fill(0.1), std: new Array(14).fill(0.9) },
});
const model = createModel(config, randomWeights(config, { seed: 21, biasScale: 0.4 }));
const dims = modelDims(config);
const HOP = 100_000;
const present = { ...emptyModalityRecord(true), label: false };

function xFor(streamId: string, index: number): Float32Array {
  let seed = index + 1;
  for (const ch of streamId) seed = (seed * 31 + ch.charCodeAt(0)) >>> 0;
  const next = mulberry32(seed);
  return Float32Array.from({ length: dims.input }, () => next() * 2 - 1);
}

const win = (streamId: string, index: number, start = index * HOP): FusedWindow => ({
  streamId,
  index,
  start,
  end: start + HOP,
  x: xFor(streamId, index),
  present,
});

const close = (streamId: string): PredictInput => ({ streamId, close: true });

function runtime(options: RuntimeOptions = {}, kernel: StepKernel = new FusedStepKernel(model, 256)) {
  return new ModelRuntime(model, kernel, { gapReset: seconds(2), ...options });
}

/** Each stream alone, one window per step from a zero state: what every batched run must reproduce bit for bit. */
function reference(windows: readonly FusedWindow[]): Map<string, Float32Array> {
  const kernel = new FusedStepKernel(model, 1);
  const states = new Map<string, Float32Array>();
  const out = new Map<string, Float32Array>();
  for (const w of windows) {
    const s = states.get(w.streamId) ?? new Float32Array(dims.state);
    const y = new Float32Array(dims.labels);
    kernel.step(1, w.x, s, y, s);
    states.set(w.streamId, s);
    out.set(`${w.streamId}#${w.index}`, y);
  }
  return out;
}

const scoresOf = (p: Prediction): Float32Array =>
  Float32Array.from(config.labels.map((l) => p.scores[l] as number));
const run = (rt: ModelRuntime, items: Observable<PredictInput>, maxQueue = 1000) =>
  lastValueFrom(items.pipe(predictWindows(rt, { maxQueue }), toArray()));

function interleaved(streams: number, windows: number): FusedWindow[] {
  const out: FusedWindow[] = [];
  for (let i = 0; i < windows; i++) for (let s = 0; s < streams; s++) out.push(win(`s${s}`, i));
  return out;
}

function expectMatchesReference(predictions: Prediction[], windows: FusedWindow[]): void {
  const ref = reference(windows);
  expect(predictions).toHaveLength(windows.length);
  const lastIndex = new Map<string, number>();
  for (const p of predictions) {
    expect(p.windowIndex).toBeGreaterThan(lastIndex.get(p.streamId) ?? -1);
    lastIndex.set(p.streamId, p.windowIndex);
    expect(scoresOf(p)).toEqual(ref.get(`${p.streamId}#${p.windowIndex}`));
  }
}

/** Emits items one at a time, letting the event loop turn between them: a slow, live-paced replay. */
const paced = (items: readonly PredictInput[]): Observable<PredictInput> =>
  new Observable((subscriber) => {
    let i = 0;
    const pump = (): void => {
      if (subscriber.closed) return;
      if (i === items.length) return subscriber.complete();
      subscriber.next(items[i++] as PredictInput);
      setTimeout(pump, 0);
    };
    pump();
  });

describe('predictWindows', () => {
  it('emits one prediction per window, per stream in order, equal bit for bit to running each stream alone', async () => {
    const windows = interleaved(20, 15);
    const rt = runtime();
    const predictions = await run(rt, from(windows));
    expectMatchesReference(predictions, windows);
    const stats = rt.statsSnapshot();
    expect(stats.batchSizes[20]).toBe(15);
    expect(stats).toMatchObject({ steps: 15, windows: 300, activeStates: 20, queuedWindows: 0 });
    expect(stats.resets.start).toBe(20);
    expect(stats.stepLatencyMs).toHaveLength(15);
  });

  it('gives byte-identical predictions whether replayed at full speed or paced (different batching)', async () => {
    const windows = interleaved(6, 8);
    const fast = runtime();
    const slow = runtime();
    const a = await run(fast, from(windows));
    const b = await run(slow, paced(windows));
    expect(Object.keys(fast.statsSnapshot().batchSizes)).toEqual(['6']);
    expect(slow.statsSnapshot().batchSizes[1]).toBeGreaterThan(0);
    const key = (p: Prediction) => `${p.streamId}#${p.windowIndex}`;
    const byKey = new Map(a.map((p) => [key(p), scoresOf(p)]));
    expect(b).toHaveLength(a.length);
    for (const p of b) expect(scoresOf(p)).toEqual(byKey.get(key(p)));
  });

  it('takes at most maxBatch streams per step, round-robin, so no stream waits behind others', async () => {
    const windows = interleaved(10, 3);
    const rt = runtime({ maxBatch: 4 });
    const predictions = await run(rt, from(windows));
    expectMatchesReference(predictions, windows);
    expect(rt.statsSnapshot().batchSizes).toEqual({ 4: 7, 2: 1 });
  });

  it('drops and counts bad windows without failing the stream, telling onDrop why', async () => {
    const good = [win('s', 0), win('s', 1), win('s', 2)];
    const nan = { ...win('s', 5), x: xFor('s', 5).fill(Number.NaN, 3, 4) };
    const short = { ...win('s', 6), x: new Float32Array(3) };
    const badTimes = { ...win('s', 7), end: 0 };
    const drops: string[] = [];
    const rt = runtime();
    const items: PredictInput[] = [
      good[0] as FusedWindow,
      nan,
      good[1] as FusedWindow,
      short,
      badTimes,
      good[2] as FusedWindow,
    ];
    const predictions = await lastValueFrom(
      from(items).pipe(
        predictWindows(rt, { onDrop: (d) => drops.push(`${d.index}:${d.reason}:${d.message}`) }),
        toArray(),
      ),
    );
    expectMatchesReference(predictions, good);
    expect(rt.statsSnapshot().dropped).toEqual({
      bad_input: 3,
      out_of_order: 0,
      queue_full: 0,
      no_state_slot: 0,
    });
    expect(drops).toEqual([
      '5:bad_input:x[3] is NaN; features must be finite',
      `6:bad_input:x must have the model's ${dims.input} fused inputs, got 3`,
      '7:bad_input:window times must be integer µs with end > start, got [700000, 0)',
    ]);
  });

  it('drops a window that is not after the last accepted one of its stream (also across steps)', async () => {
    const rt = runtime();
    const subject = new Subject<PredictInput>();
    const out = lastValueFrom(subject.pipe(predictWindows(rt), toArray()));
    subject.next(win('s', 3));
    subject.next(win('s', 3));
    subject.next(win('s', 1));
    await new Promise((r) => setTimeout(r, 5));
    subject.next(win('s', 2));
    subject.next(win('s', 4));
    subject.complete();
    const predictions = await out;
    expect(predictions.map((p) => p.windowIndex)).toEqual([3, 4]);
    expect(rt.statsSnapshot().dropped.out_of_order).toBe(3);
  });

  it('bounds each stream queue, dropping the oldest window and counting it', async () => {
    const rt = runtime();
    const windows = [0, 1, 2, 3, 4].map((i) => win('s', i));
    const predictions = await run(rt, from(windows), 2);
    expect(predictions.map((p) => p.windowIndex)).toEqual([3, 4]);
    expect(rt.statsSnapshot().dropped.queue_full).toBe(3);
    expectMatchesReference(predictions, windows.slice(3));
  });

  it('frees a stream state on close, after its queued windows; 10k streams opened and closed leave nothing', async () => {
    const rt = runtime();
    const items: PredictInput[] = [];
    for (let s = 0; s < 10_000; s++) items.push(win(`stream-${s}`, 0), close(`stream-${s}`));
    const predictions = await run(rt, from(items));
    expect(predictions).toHaveLength(10_000);
    const stats = rt.statsSnapshot();
    expect(stats).toMatchObject({ activeStates: 0, queuedWindows: 0, closed: 10_000 });
    expect(rt.store.size).toBe(0);
  });

  it('a stream that closes and comes back starts again from a zero state', async () => {
    const rt = runtime();
    const items = [win('s', 0), win('s', 1), close('s'), win('s', 0)];
    const predictions = await run(rt, from(items));
    expect(predictions.map((p) => p.windowIndex)).toEqual([0, 1, 0]);
    expect(scoresOf(predictions[2] as Prediction)).toEqual(scoresOf(predictions[0] as Prediction));
    expect(rt.statsSnapshot().resets.start).toBe(2);
  });

  it('after a restart marker takes lower window indices again and keeps the state (a clock that jumped back)', async () => {
    const rt = runtime();
    const restart: PredictInput = { streamId: 's', restart: true };
    // A negative index too: a window that starts before the clock's zero (a producer clock starting at 0).
    const items = [
      win('s', 5),
      win('s', 6),
      restart,
      win('s', -1, -HOP),
      win('s', 0),
      win('s', -3, -3 * HOP),
    ];
    const predictions = await run(rt, from(items));
    expect(predictions.map((p) => p.windowIndex)).toEqual([5, 6, -1, 0]);
    // Window -1 ran from the state window 6 left: not what a fresh start gives.
    expect(scoresOf(predictions[2] as Prediction)).not.toEqual(reference([win('s', -1, -HOP)]).get('s#-1'));
    const stats = rt.statsSnapshot();
    expect(stats.resets).toMatchObject({ start: 1, gap: 0 });
    // Without a restart, a lower index is still out of order.
    expect(stats.dropped.out_of_order).toBe(1);
  });

  it('resets the state after an event-time gap longer than gapReset', async () => {
    const rt = runtime();
    const late = win('s', 40, 2 * HOP + seconds(2) + 1);
    const predictions = await run(rt, from([win('s', 0), win('s', 1), late]));
    const fresh = reference([late]).get('s#40');
    expect(scoresOf(predictions[2] as Prediction)).toEqual(fresh);
    expect(rt.statsSnapshot().resets.gap).toBe(1);
  });

  it('resets on request and expires idle streams by the (injected) wall clock', async () => {
    let now = 0;
    const rt = runtime({ gapReset: seconds(1), idleExpiry: seconds(1), clock: () => now });
    await rt.step([win('a', 0), win('b', 0)]);
    expect(rt.reset('a')).toBe(true);
    const [pa] = await rt.step([win('a', 1)]);
    expect(scoresOf(pa as Prediction)).toEqual(reference([win('a', 1)]).get('a#1'));
    now = seconds(1) + 1;
    await rt.step([win('c', 0)]);
    expect(rt.store.has('b')).toBe(false);
    expect(rt.store.has('c')).toBe(true);
    expect(rt.statsSnapshot()).toMatchObject({ expired: 2, resets: { request: 1 } });
  });

  it('continues bit for bit from a JSON snapshot restored into another runtime', async () => {
    const windows = interleaved(5, 10);
    const first = windows.filter((w) => w.index < 4);
    const rest = windows.filter((w) => w.index >= 4);
    const a = runtime();
    await run(a, from(first));
    const snapshot = JSON.parse(JSON.stringify(await a.snapshot()));
    const b = runtime();
    b.restore(snapshot);
    const predictions = await run(b, from(rest));
    const ref = reference(windows);
    for (const p of predictions) expect(scoresOf(p)).toEqual(ref.get(`${p.streamId}#${p.windowIndex}`));
    expect(b.statsSnapshot().resets.start).toBe(0);
  });

  it('exports one stream as each prediction comes out and continues it bit for bit in another runtime, beside other streams', async () => {
    const windows = interleaved(4, 9);
    const a = runtime();
    // Taken as each prediction of s2 comes out, while the other streams go on stepping: the state after that window.
    const exported = new Map<number, Promise<ModelStreamState> | undefined>();
    const all = await lastValueFrom(
      paced(windows).pipe(
        predictWindows(a, { maxQueue: 1000 }),
        tap((p) => {
          if (p.streamId === 's2') exported.set(p.windowIndex, a.exportStream('s2'));
        }),
        toArray(),
      ),
    );
    expectMatchesReference(all, windows);
    const after4 = await exported.get(4);
    expect(after4?.lastIndex).toBe(4);
    // Exact float32 bytes through the checkpoint's encoding.
    const state = decodeFloats(encodeFloats(after4!.state), dims.state, 's2');
    expect(Buffer.from(state.buffer)).toEqual(Buffer.from(after4!.state.buffer));
    const b = runtime();
    // b already runs another stream; s2 joins it from the exported state.
    await run(b, from([win('other', 0)]));
    b.importStream('s2', { ...after4!, state });
    expect(() => b.importStream('s2', { ...after4!, state })).toThrow(/has a state already/);
    expect(() => b.importStream('s3', { ...after4!, state: new Float32Array(2) })).toThrow(/has 2 floats/);
    const rest = windows.filter((w) => w.streamId === 's2' && w.index > 4);
    const continued = await run(b, from([win('s2', 4), ...rest]));
    // Window 4 again is refused (its state is already past it); the rest equal the uninterrupted run's.
    expect(continued.map((p) => p.windowIndex)).toEqual(rest.map((w) => w.index));
    const ref = reference(windows);
    for (const p of continued) expect(scoresOf(p)).toEqual(ref.get(`s2#${p.windowIndex}`));
    expect(b.statsSnapshot().resets.start).toBe(1);
    expect(b.statsSnapshot().dropped.out_of_order).toBe(1);
  });

  it('with an asynchronous kernel, never overlaps steps and batches what arrived during a step', async () => {
    const inner = new FusedStepKernel(model, 256);
    let active = 0;
    let maxActive = 0;
    // A GPU-like kernel: the same computation, finishing a few ms later.
    const slow: StepKernel = {
      backend: 'webgpu',
      device: 'gpu',
      dims: inner.dims,
      maxBatch: inner.maxBatch,
      step: async (n, x, s, y, s2) => {
        active++;
        maxActive = Math.max(maxActive, active);
        inner.step(n, x, s, y, s2);
        await new Promise((r) => setTimeout(r, 3));
        active--;
      },
      dispose: () => inner.dispose(),
    };
    const windows = interleaved(8, 6);
    const rt = runtime({}, slow);
    const predictions = await run(rt, paced(windows));
    expectMatchesReference(predictions, windows);
    expect(maxActive).toBe(1);
    expect(Math.max(...Object.keys(rt.statsSnapshot().batchSizes).map(Number))).toBeGreaterThan(1);
  });

  it('errors the output when the backend fails', async () => {
    const kernel = new TfStepKernel(model, 'cpu', 8);
    const rt = runtime({}, kernel);
    kernel.dispose(); // its weight tensors are gone: the next step throws inside tfjs
    const error = await firstValueFrom(from([win('s', 0)]).pipe(predictWindows(rt))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BraidError);
    expect((error as BraidError).code).toBe('BRAID_ERR_MODEL');
    expect((error as Error).message).toMatch(/^cpu step failed: /);
    expect((error as Error).cause).toBeInstanceOf(TypeError);
  });

  it('drops and counts malformed items (null, a close marker without a stream) instead of crashing', async () => {
    const rt = runtime();
    const drops: string[] = [];
    const items = [null, { close: true }, win('s', 0), 42] as unknown as PredictInput[];
    const predictions = await lastValueFrom(
      from(items).pipe(
        predictWindows(rt, { onDrop: (d) => drops.push(`${d.streamId}:${d.reason}:${d.message}`) }),
        toArray(),
      ),
    );
    expect(predictions.map((p) => p.windowIndex)).toEqual([0]);
    expect(rt.statsSnapshot().dropped.bad_input).toBe(3);
    expect(drops).toEqual([
      'undefined:bad_input:a window must be an object, got null',
      'undefined:bad_input:a close or restart marker needs the streamId of its stream',
      'undefined:bad_input:a window must be an object, got 42',
    ]);
  });

  it('an onDrop callback that throws errors the output instead of crashing the process', async () => {
    const failure = new Error('logger broke');
    const items: PredictInput[] = [win('s', 1), win('s', 0)];
    const output = lastValueFrom(
      from(items).pipe(
        predictWindows(runtime(), {
          onDrop: () => {
            throw failure;
          },
        }),
        toArray(),
      ),
    );
    await expect(output).rejects.toBe(failure);
  });

  it('refuses a gapReset longer than idleExpiry, naming gapReset', () => {
    expect(() => runtime({ gapReset: seconds(61), idleExpiry: seconds(60) })).toThrow(InvalidOptionError);
    expect(() => runtime({ gapReset: seconds(61), idleExpiry: seconds(60) })).toThrow(
      /option "gapReset": must not exceed idleExpiry \(60000000 µs\)/,
    );
    expect(() => runtime({ gapReset: seconds(60), idleExpiry: seconds(60) })).not.toThrow();
  });
});
