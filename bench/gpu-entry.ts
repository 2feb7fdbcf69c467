/// <reference types="@webgpu/types" />
/**
 * WebGPU check and benchmark, for a machine whose GPU Dawn (npm "webgpu") can use: npx tsx bench/gpu-entry.ts
 * [--quick], or bundled by ../shared/gpu/prepare.sh bench/gpu-entry.ts and run there with bash .gpu/run.sh.
 * On a CPU-only machine VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json runs it on SwiftShader (the
 * checks mean something there, the timings nothing).
 *
 * 1. Checks the `webgpu` backend's WGSL step against the CPU kernel (bench/webgpu-check.ts: scattered slots, shuffled
 *    rows, resets, slot reuse, many steps): GRU and LSTM, sigmoid and softmax, (64, 128) and (256, 512), workgroups
 *    of 1, 2 and 3 threads, the bundled demo model (models/demo) and two models shaped like imported Keras ones (a
 *    fused encoder; a GRU without reset_after); relative L2 ≤ 1e-4 on scores and states.
 * 2. Prints the bench table: the WGSL kernel, the same through ModelRuntime.step (gather, step, predictions), the
 *    plain tfjs-webgpu ops for comparison, and cpu-fused, at batch 1, 16, 256, 4096 (1, 256 with --quick).
 *
 * Exit status: 0 all checks passed, 1 a check failed, 2 no usable GPU adapter.
 */
import { existsSync } from 'node:fs';
// esbuild drops a bare `import '@tensorflow/tfjs-backend-cpu'` (the package marks its Node build free of side
// effects), which would leave the bundle no tfjs backend to load models/demo with: a used import keeps it.
import { version_cpu } from '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { FusedStepKernel } from '../src/model/fused-kernel.js';
import { loadModel } from '../src/model/model-io.js';
import { ModelRuntime } from '../src/model/runtime.js';
import type { StepKernel } from '../src/model/step-kernel.js';
import { TfStepKernel } from '../src/model/tf-kernel.js';
import { adapterName, type OpenedDevice, openWebGpuDevice } from '../src/model/webgpu-adapter.js';
import { WebGpuStep } from '../src/model/webgpu-step.js';
import type { Model } from '../src/model/weights.js';
import { mulberry32 } from '../src/model/weights.js';
import {
  batchesFor,
  benchModel,
  budgetFor,
  fmt,
  machineLine,
  rate,
  SHAPES,
  type Timing,
  timeSlotKernel,
  timeStepKernel,
} from './model-table.js';
import {
  type CheckOptions,
  checkModel,
  checkWebGpuStep,
  IMPORTED_VARIANTS,
  importedShapeModel,
} from './webgpu-check.js';

const quick = process.argv.includes('--quick');
const BATCHES = batchesFor(quick);
const BUDGET_MS = budgetFor(quick);
const TOLERANCE = 1e-4;

async function check(
  device: GPUDevice,
  model: Model,
  label: string,
  options: CheckOptions,
): Promise<boolean> {
  const r = await checkWebGpuStep(device, model, options);
  const ok = r.scores <= TOLERANCE && r.states <= TOLERANCE;
  console.log(
    `${ok ? 'PASS' : 'FAIL'} ${label}: relative L2 scores ${r.scores.toExponential(2)}, states ${r.states.toExponential(2)} (limit ${TOLERANCE}; ${r.rowsRun} rows, ${r.freshRows} fresh, ${r.reusedSlots} slots reused)`,
  );
  return ok;
}

/**
 * The tfjs-ops model on @tensorflow/tfjs-backend-webgpu, for comparison only (it is no braid backend): the
 * package registers only if navigator.gpu exists when it is imported.
 */
async function tfjsWebGpu(model: Model, maxBatch: number, gpu: GPU): Promise<StepKernel | string> {
  try {
    const dawn = (await import('webgpu' as string)) as { globals: object };
    const g = globalThis as Record<string, unknown>;
    Object.assign(g, dawn.globals);
    if (!g['navigator']) g['navigator'] = { gpu };
    else if (!(g['navigator'] as { gpu?: unknown }).gpu)
      Object.defineProperty(g['navigator'], 'gpu', { value: gpu, configurable: true });
    await import('@tensorflow/tfjs-backend-webgpu' as string);
    if (!(await tf.setBackend('webgpu'))) return 'tfjs could not start its webgpu backend';
    await tf.ready();
    return new TfStepKernel(model, 'webgpu', maxBatch);
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/** ModelRuntime.step over `batch` streams, one window each per step: what a server tick costs (inputs made once). */
function runtimeRunner(runtime: ModelRuntime, batch: number): () => Promise<void> {
  const next = mulberry32(batch);
  const present = { audio: true, video: false, text: false, label: false };
  const xs = Array.from({ length: batch }, () =>
    Float32Array.from({ length: runtime.dims.input }, () => next() * 2 - 1),
  );
  let index = 0;
  return async () => {
    const windows = xs.map((x, s) => ({
      streamId: `s${s}`,
      index,
      start: index * 500_000,
      end: (index + 1) * 500_000,
      x,
      present,
    }));
    index++;
    await runtime.step(windows);
  };
}

async function timeRunner(run: () => Promise<void>): Promise<Timing> {
  await run();
  await run();
  const samples: number[] = [];
  const until = performance.now() + BUDGET_MS;
  while (samples.length < 3 || (performance.now() < until && samples.length < 2000)) {
    const t0 = performance.now();
    await run();
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  return {
    median: samples[samples.length >> 1] as number,
    p90: samples[Math.floor(samples.length * 0.9)] as number,
    steps: samples.length,
  };
}

async function main(): Promise<number> {
  let opened: OpenedDevice;
  try {
    opened = await openWebGpuDevice({ allowSoftware: true });
  } catch (error) {
    console.log(`no GPU adapter: ${error instanceof Error ? error.message : String(error)}`);
    return 2;
  }
  const { device, gpu } = opened;
  console.log(
    `adapter: ${adapterName(opened.adapter)}${opened.software ? ' — SOFTWARE: timings mean nothing' : ''}`,
  );
  console.log(`tfjs ${tf.version_core}, tfjs-backend-cpu ${version_cpu}`);
  let ok = true;
  for (const [inputs, hidden] of SHAPES)
    for (const cell of ['gru', 'lstm'] as const)
      for (const head of ['sigmoid', 'softmax'] as const)
        ok =
          (await check(
            device,
            checkModel(inputs, hidden, cell, head),
            `${cell} ${head} (${inputs}, ${hidden})`,
            {
              streams: 37,
              steps: 12,
            },
          )) && ok;
  for (const workgroupSize of [1, 2, 3])
    ok =
      (await check(
        device,
        checkModel(64, 128, 'lstm', 'softmax'),
        `lstm softmax (64, 128), workgroup ${workgroupSize}`,
        {
          streams: 9,
          steps: 4,
          workgroupSize,
        },
      )) && ok;
  // A real model too: the bundled demo model, from the working tree that travels with .gpu/.
  if (existsSync('models/demo'))
    ok =
      (await check(device, await loadModel('models/demo'), 'bundled demo model (models/demo)', {
        streams: 37,
        steps: 12,
      })) && ok;
  else {
    console.log('FAIL bundled demo model: models/demo not found (run from the repository root)');
    ok = false;
  }

  for (const [cell, resetAfter, fusedEncoder] of IMPORTED_VARIANTS)
    ok =
      (await check(
        device,
        importedShapeModel(cell, resetAfter, fusedEncoder),
        `imported-Keras-shaped ${cell}${resetAfter === false ? ' (reset before)' : ''}, fused encoder of ${fusedEncoder.length} layers`,
        { streams: 37, steps: 12 },
      )) && ok;

  console.log(`\n${machineLine()}, ${adapterName(opened.adapter)}\n`);
  console.log('| kernel | (inputs, hidden) | batch | step ms (median) | p90 ms | steps timed | windows/s |');
  console.log('|---|---|---:|---:|---:|---:|---:|');
  const maxBatch = Math.max(...BATCHES);
  for (const [inputs, hidden] of SHAPES) {
    const model = benchModel(inputs, hidden);
    const rows: [string, (batch: number) => Promise<Timing>, () => void][] = [];
    const wgsl = await WebGpuStep.create(device, model, { maxBatch, maxStreams: maxBatch });
    rows.push(['webgpu (WGSL fused)', (b) => timeSlotKernel(wgsl, b, BUDGET_MS), () => wgsl.dispose()]);
    const onGpu = new ModelRuntime(
      model,
      await WebGpuStep.create(device, model, { maxBatch, maxStreams: maxBatch }),
      {
        maxBatch,
      },
    );
    rows.push([
      'webgpu ModelRuntime.step',
      (b) => timeRunner(runtimeRunner(onGpu, b)),
      () => onGpu.dispose(),
    ]);
    const tfjs = await tfjsWebGpu(model, maxBatch, gpu);
    if (typeof tfjs === 'string') console.log(`(tfjs-webgpu ops skipped: ${tfjs})`);
    else
      rows.push([
        'tfjs-webgpu ops (comparison)',
        (b) => timeStepKernel(tfjs, b, BUDGET_MS),
        () => tfjs.dispose(),
      ]);
    const fused = new FusedStepKernel(model, maxBatch);
    rows.push(['cpu-fused', (b) => timeStepKernel(fused, b, BUDGET_MS), () => fused.dispose()]);
    const onCpu = new ModelRuntime(model, new FusedStepKernel(model, maxBatch), { maxBatch });
    rows.push([
      'cpu-fused ModelRuntime.step',
      (b) => timeRunner(runtimeRunner(onCpu, b)),
      () => onCpu.dispose(),
    ]);
    for (const [name, timeAt, dispose] of rows) {
      for (const batch of BATCHES) {
        const t = await timeAt(batch);
        console.log(
          `| ${name} | (${inputs}, ${hidden}) | ${batch} | ${fmt(t.median)} | ${fmt(t.p90)} | ${t.steps} | ${rate(batch, t.median)} |`,
        );
      }
      dispose();
    }
  }
  device.destroy();
  console.log(ok ? '\nall checks passed' : '\nSOME CHECKS FAILED');
  return ok ? 0 : 1;
}

process.exitCode = await main();
