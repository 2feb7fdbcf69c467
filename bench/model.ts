/**
 * Model step benchmark: latency (reading results back included) and throughput of one batched step per backend,
 * at batch 1, 16, 256, 4096 and (inputs, hidden) = (64, 128), (256, 512). The tfjs-ops model on tfjs-backend-cpu
 * ("cpu") is the plain-tfjs baseline, measured in the same run. `webgpu` (the fused WGSL step, states in GPU slots)
 * is measured when Dawn has a GPU adapter here; a software one (SwiftShader) only with BRAID_WEBGPU_SOFTWARE=1,
 * and its figures then say nothing about a GPU. Run: npx tsx bench/model.ts [--quick]
 *
 * `--model DIR` (repeatable) times saved models instead, on cpu-fused, each against the first in the same run: e.g.
 * the bundled model beside an ensemble of seeds (`braid ensemble`) or a wider one. An ensemble runs twice: member by
 * member (its cell split in groups, what cpu-fused does) and as the whole block-diagonal cell in one product.
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { createKernel, createStepKernel, type HostBackendName, probeBackend } from '../src/model/backends.js';
import { modelDims } from '../src/model/config.js';
import { FusedStepKernel } from '../src/model/fused-kernel.js';
import { loadModel } from '../src/model/model-io.js';
import { packWeights } from '../src/model/packed-weights.js';
import { BACKEND_NAMES, type BackendName } from '../src/model/step-kernel.js';
import { softwareGpuAllowed } from '../src/model/webgpu-adapter.js';
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

const quick = process.argv.includes('--quick');
const BATCHES = batchesFor(quick);
const BUDGET_MS = budgetFor(quick);

const modelDirs =
  parseArgs({ options: { quick: { type: 'boolean' }, model: { type: 'string', multiple: true } } }).values
    .model ?? [];

async function savedModels(dirs: readonly string[]): Promise<void> {
  console.log(`\n${machineLine()}\n`);
  console.log(
    '| model | inputs | cell input | hidden | cell groups | batch | step ms (median) | p90 ms | steps timed | × first |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  const first = new Map<number, number>();
  for (const dir of dirs) {
    const model = await loadModel(dir);
    const d = modelDims(model.config);
    const groups = packWeights(model, { splitCell: true }).groups.length;
    // An ensemble also as the one dense product it was before cells were split, in the same run.
    const variants = groups > 1 ? [true, false] : [true];
    for (const splitCell of variants) {
      const kernel = new FusedStepKernel(model, Math.max(...BATCHES), { splitCell });
      for (const batch of BATCHES) {
        const t = await timeStepKernel(kernel, batch, BUDGET_MS);
        if (!first.has(batch)) first.set(batch, t.median);
        console.log(
          `| ${dir} | ${d.input} | ${d.cellInput} | ${d.hidden} | ${splitCell ? groups : '1 (whole)'} | ${batch} | ${fmt(t.median)} | ${fmt(t.p90)} | ${t.steps} | ${(t.median / (first.get(batch) as number)).toFixed(2)} |`,
        );
      }
      kernel.dispose();
    }
  }
}

async function main(): Promise<void> {
  if (modelDirs.length > 0) return savedModels(modelDirs);
  const allowSoftwareGpu = softwareGpuAllowed();
  const available: BackendName[] = [];
  for (const b of BACKEND_NAMES) {
    const probe = await probeBackend(b, { allowSoftwareGpu });
    if (probe.available) {
      available.push(b);
      if (probe.note) console.log(`${b}: ${probe.note}`);
    } else console.log(`skipped ${b}: ${probe.reason}`);
  }
  console.log(`\n${machineLine()}\n`);
  console.log(
    '| backend | (inputs, hidden) | batch | step ms (median) | p90 ms | steps timed | windows/s | × tfjs cpu |',
  );
  console.log('|---|---|---:|---:|---:|---:|---:|---:|');
  const maxBatch = Math.max(...BATCHES);
  for (const [inputs, hidden] of SHAPES) {
    const model = benchModel(inputs, hidden);
    const baseline = new Map<number, number>();
    // The baseline first, so every other row can be compared with it.
    const order = ['cpu', ...available.filter((b) => b !== 'cpu')] as BackendName[];
    for (const backend of order) {
      if (!available.includes(backend)) continue;
      let timeAt: (batch: number) => Promise<Timing>;
      let dispose: () => void;
      if (backend === 'webgpu') {
        const kernel = await createKernel(model, backend, {
          maxBatch,
          maxStreams: maxBatch,
          allowSoftwareGpu,
        });
        timeAt = (batch) => timeSlotKernel(kernel, batch, BUDGET_MS);
        dispose = () => kernel.dispose();
      } else {
        const kernel = await createStepKernel(model, backend as HostBackendName, maxBatch);
        timeAt = (batch) => timeStepKernel(kernel, batch, BUDGET_MS);
        dispose = () => kernel.dispose();
      }
      for (const batch of BATCHES) {
        const t = await timeAt(batch);
        if (backend === 'cpu') baseline.set(batch, t.median);
        const speedup = (baseline.get(batch) ?? Number.NaN) / t.median;
        console.log(
          `| ${backend} | (${inputs}, ${hidden}) | ${batch} | ${fmt(t.median)} | ${fmt(t.p90)} | ${t.steps} | ${rate(batch, t.median)} | ${speedup.toFixed(1)} |`,
        );
      }
      dispose();
    }
  }
  await tf.setBackend('cpu');
}

await main();
