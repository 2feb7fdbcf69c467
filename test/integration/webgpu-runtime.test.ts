/// <reference types="@webgpu/types" />
import { from, lastValueFrom, Subject, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { emptyModalityRecord, InvalidOptionError, type Prediction } from '../../src/core/index.js';
import { seconds } from '../../src/core/time.js';
import { createKernel } from '../../src/model/backends.js';
import { modelDims, parseModelConfig } from '../../src/model/config.js';
import { FusedStepKernel } from '../../src/model/fused-kernel.js';
import { type PredictInput, predictWindows } from '../../src/model/predict-windows.js';
import { type FusedWindow, ModelRuntime } from '../../src/model/runtime.js';
import { selectBackend } from '../../src/model/select-backend.js';
import type { WebGpuStep } from '../../src/model/webgpu-step.js';
import { createModel, mulberry32, randomWeights } from '../../src/model/weights.js';
import { useSwiftShader } from '../helpers/swiftshader.js';

/**
 * ModelRuntime on the webgpu backend, executed on SwiftShader: the same predictions as cpu-fused through resets,
 * gaps, closes and slot reuse; snapshots both ways; a full state table; and the GPU failing under it.
 */
const ready = await useSwiftShader();

const config = parseModelConfig({
  inputLayout: { audio: 6, video: 3, text: 2, mask: 3 },
  encoderUnits: { audio: 4, video: 3, text: 2 },
  hidden: 9,
  cell: 'lstm',
  labels: ['a', 'b', 'c'],
  head: 'sigmoid',
  featureConfig: null,
  normalization: { mean: new Array(14).fill(0.1), std: new Array(14).fill(0.9) },
});
const model = createModel(config, randomWeights(config, { seed: 5, biasScale: 0.4 }));
const dims = modelDims(config);
const HOP = 100_000;
const present = { ...emptyModalityRecord(true), label: false };
const TOLERANCE = 1e-5;

function win(streamId: string, index: number, start = index * HOP): FusedWindow {
  let seed = index + 1;
  for (const ch of streamId) seed = (seed * 31 + ch.charCodeAt(0)) >>> 0;
  const next = mulberry32(seed);
  const x = Float32Array.from({ length: dims.input }, () => next() * 2 - 1);
  return { streamId, index, start, end: start + HOP, x, present };
}

/**
 * Streams coming and going, tick by tick: at most three at once, eight over the run, one resuming after a long gap,
 * one reopened under an old name. With a table of 4 slots, slots are reused.
 */
function session(): { windows: FusedWindow[]; closes: string[] }[] {
  const ticks: { windows: FusedWindow[]; closes: string[] }[] = [];
  const alive = new Map<string, number>();
  let opened = 0;
  for (let t = 0; t < 24; t++) {
    if (alive.size < 3 && opened < 8) alive.set(`s${opened++}`, 0);
    const windows: FusedWindow[] = [];
    for (const [id, i] of alive) {
      // s1 pauses past the gap reset once.
      windows.push(win(id, i, id === 's1' && i >= 4 ? i * HOP + seconds(3) : i * HOP));
      alive.set(id, i + 1);
    }
    const closes = [...alive].filter(([id, i]) => i >= 6 + (id.charCodeAt(1) % 3)).map(([id]) => id);
    for (const id of closes) alive.delete(id);
    ticks.push({ windows, closes });
  }
  ticks.push({ windows: [win('s0', 0)], closes: [] }, { windows: [win('s0', 1)], closes: [] });
  return ticks;
}

async function drive(rt: ModelRuntime, ticks: ReturnType<typeof session>): Promise<Prediction[]> {
  const out: Prediction[] = [];
  for (const { windows, closes } of ticks) {
    if (windows.length > 0) out.push(...(await rt.step(windows)));
    for (const id of closes) rt.close(id);
  }
  return out;
}

const gpuRuntime = async (maxStreams = 4, log?: (l: string) => void) =>
  new ModelRuntime(
    model,
    await createKernel(model, 'webgpu', { maxBatch: 8, maxStreams, allowSoftwareGpu: true }),
    {
      gapReset: seconds(2),
      log,
    },
  );
const cpuRuntime = () => new ModelRuntime(model, new FusedStepKernel(model, 8), { gapReset: seconds(2) });
const run = (rt: ModelRuntime, items: readonly PredictInput[]) =>
  lastValueFrom(from(items).pipe(predictWindows(rt, { maxQueue: 1000 }), toArray()));
const key = (p: Prediction) => `${p.streamId}#${p.windowIndex}`;

function expectClose(got: readonly Prediction[], want: readonly Prediction[]): void {
  expect(got.map(key)).toEqual(want.map(key));
  let worst = 0;
  got.forEach((p, i) => {
    for (const label of config.labels)
      worst = Math.max(
        worst,
        Math.abs((p.scores[label] as number) - ((want[i] as Prediction).scores[label] as number)),
      );
  });
  expect(worst).toBeLessThan(TOLERANCE);
}

const gpuOf = (rt: ModelRuntime): WebGpuStep => rt.kernel as WebGpuStep;

describe.skipIf(!ready)('ModelRuntime on webgpu (SwiftShader)', () => {
  it('predicts what cpu-fused predicts through resets, gaps, closes and reused slots', async () => {
    const ticks = session();
    const gpu = await gpuRuntime(4);
    const cpu = cpuRuntime();
    try {
      const [got, want] = [await drive(gpu, ticks), await drive(cpu, ticks)];
      expect(got).toHaveLength(57);
      expectClose(got, want);
      expect(gpu.statsSnapshot()).toMatchObject({
        resets: { ...cpu.statsSnapshot().resets },
        dropped: { no_state_slot: 0 },
        closed: 8,
        failovers: 0,
      });
      expect(gpu.backend).toBe('webgpu');
    } finally {
      gpu.dispose();
      cpu.dispose();
    }
  });

  it('a webgpu snapshot continues on cpu-fused and a cpu-fused one on webgpu', async () => {
    const first = ['a', 'b', 'c'].flatMap((id) => [0, 1, 2].map((i) => win(id, i)));
    const rest = ['a', 'b', 'c'].flatMap((id) => [3, 4].map((i) => win(id, i)));
    const reference = cpuRuntime();
    await run(reference, first);
    const want = await run(reference, rest);
    const gpu = await gpuRuntime(8);
    try {
      await run(gpu, first);
      gpu.reset('c');
      const fromGpu = JSON.parse(JSON.stringify(await gpu.snapshot()));
      const cpu = cpuRuntime();
      cpu.restore(fromGpu);
      const onCpu = await run(cpu, rest);
      // c was reset on the GPU: its snapshot holds zeros, so it diverges from the reference; a and b continue.
      expectClose(
        onCpu.filter((p) => p.streamId !== 'c'),
        want.filter((p) => p.streamId !== 'c'),
      );
      expect(new Set(fromGpu.streams.map((s: { streamId: string }) => s.streamId))).toEqual(
        new Set(['a', 'b', 'c']),
      );

      const back = await gpuRuntime(8);
      back.restore(await reference.snapshot());
      const more = ['a', 'b', 'c'].map((id) => win(id, 5));
      expectClose(await run(back, more), await run(reference, more));
      back.dispose();
    } finally {
      gpu.dispose();
      reference.dispose();
    }
  });

  it('drops, counted, the window of a new stream while every GPU slot is in use; a closed stream frees one', async () => {
    const gpu = await gpuRuntime(2);
    const input = new Subject<PredictInput>();
    const got: string[] = [];
    const waiters: { n: number; resolve: () => void }[] = [];
    const sub = input.pipe(predictWindows(gpu)).subscribe((p) => {
      got.push(key(p));
      for (const w of waiters) if (got.length >= w.n) w.resolve();
    });
    const until = (n: number) => new Promise<void>((resolve) => waiters.push({ n, resolve }));
    try {
      for (const w of [win('a', 0), win('b', 0), win('c', 0)]) input.next(w);
      await until(2);
      input.next({ streamId: 'a', close: true });
      input.next(win('d', 0));
      await until(3);
      expect(got).toEqual(['a#0', 'b#0', 'd#0']);
      expect(gpu.statsSnapshot().dropped.no_state_slot).toBe(1);
    } finally {
      sub.unsubscribe();
      gpu.dispose();
    }
  });

  it('auto never picks a software adapter; a named webgpu runs on one only when allowed, and says so', async () => {
    const selection = await selectBackend(model, { maxBatch: 4, batchSizes: [1], measureMs: 5 });
    selection.kernel.dispose();
    expect(selection.backend).not.toBe('webgpu');
    expect(selection.skipped.find((s) => s.backend === 'webgpu')?.reason).toMatch(
      /^Dawn's adapter is a software one, google swiftshader/,
    );
    const refused = await selectBackend(model, {
      backend: 'webgpu',
      maxBatch: 4,
      allowSoftwareGpu: false,
    }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(InvalidOptionError);
    expect((refused as Error).message).toMatch(
      /backend "webgpu" is not available here: Dawn's adapter is a software one, google swiftshader .*set BRAID_WEBGPU_SOFTWARE=1/,
    );
    const named = await selectBackend(model, { backend: 'webgpu', maxBatch: 4, allowSoftwareGpu: true });
    named.kernel.dispose();
    expect(named.reason).toMatch(/^backend webgpu was named \(on google swiftshader .*, a software adapter/);
  });
});

describe.skipIf(!ready)('the GPU failing under a running ModelRuntime', () => {
  const streams = ['p', 'q', 'r'];
  const before = streams.flatMap((id) => [0, 1, 2].map((i) => win(id, i)));
  const after = streams.flatMap((id) => [3, 4, 5].map((i) => win(id, i)));

  it('device destroyed between steps: moves to cpu-fused, the unreadable states reset (counted, logged)', async () => {
    const lines: string[] = [];
    let logged = (): void => {};
    const moved = new Promise<void>((resolve) => {
      logged = resolve;
    });
    const gpu = await gpuRuntime(8, (line) => {
      lines.push(line);
      if (line.includes('moved to cpu-fused')) logged();
    });
    await run(gpu, before);
    gpuOf(gpu).gpuDevice.destroy();
    await moved;
    const got = await run(gpu, after);
    // What cpu-fused gives when every stream starts again from zeros at that point.
    const reference = cpuRuntime();
    await run(reference, before);
    for (const id of streams) reference.reset(id);
    expectClose(got, await run(reference, after));
    expect(gpu.backend).toBe('cpu-fused');
    expect(gpu.statsSnapshot()).toMatchObject({ failovers: 1, resets: { device_lost: 3 } });
    expect(lines.join('\n')).toMatch(
      /model backend webgpu: device lost \(destroyed.*\n.*failed, its device was lost .*moved to cpu-fused, carrying 0 stream state\(s\); 3 could not be read back and start from zeros \(p, q, r\)/,
    );
    gpu.dispose();
  });

  it('device destroyed while a step runs: the step still gives its predictions, from the CPU', async () => {
    const gpu = await gpuRuntime(8);
    await run(gpu, before);
    const step = gpu.step(streams.map((id) => win(id, 3)));
    gpuOf(gpu).gpuDevice.destroy();
    const predictions = await step;
    expect(predictions.map(key)).toEqual(['p#3', 'q#3', 'r#3']);
    expect(gpu.backend).toBe('cpu-fused');
    expect(gpu.statsSnapshot().resets.device_lost).toBe(3);
    const reference = cpuRuntime();
    await run(reference, before);
    for (const id of streams) reference.reset(id);
    expectClose(predictions, await reference.step(streams.map((id) => win(id, 3))));
    gpu.dispose();
  });

  it('a step the device rejects (its device still alive): the states are read back and carried to the CPU', async () => {
    const lines: string[] = [];
    const gpu = await gpuRuntime(8, (l) => lines.push(l));
    await run(gpu, before);
    // A real validation failure: the step's input buffer is gone, so the submit is refused and nothing runs.
    (gpuOf(gpu) as unknown as { input: GPUBuffer }).input.destroy();
    const got = await run(gpu, after);
    const reference = cpuRuntime();
    await run(reference, before);
    expectClose(got, await run(reference, after));
    expect(gpu.statsSnapshot()).toMatchObject({ failovers: 1, resets: { device_lost: 0 } });
    expect(lines.join('\n')).toMatch(
      /its step failed: webgpu step: validation error: .* used in submit while destroyed.*; moved to cpu-fused, carrying 3 stream state\(s\)$/,
    );
    gpu.dispose();
  });
});
