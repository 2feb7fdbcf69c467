/**
 * Model step benchmark: latency (reading results back included) and throughput of one batched step per backend,
 * at batch 1, 16, 256, 4096 and (inputs, hidden) = (64, 128), (256, 512). The tfjs-ops model on tfjs-backend-cpu
 * ("cpu") is the plain-tfjs baseline, measured in the same run. Run: npx tsx bench/model.ts [--quick]
 */
import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { probeBackend } from '../src/model/backends.js';
import { identityNormalization, type ModelConfig, parseModelConfig } from '../src/model/config.js';
import { createStepKernel } from '../src/model/index.js';
import { BACKEND_NAMES, type BackendName, type StepKernel } from '../src/model/step-kernel.js';
import { createModel, type Model, mulberry32, randomWeights } from '../src/model/weights.js';

const quick = process.argv.includes('--quick');
const SHAPES: readonly [number, number][] = [
  [64, 128],
  [256, 512],
];
const BATCHES = quick ? [1, 256] : [1, 16, 256, 4096];
/** Time spent timing each cell of the table after warm-up (a slow cell still gets 3 timed steps). */
const BUDGET_MS = quick ? 150 : 600;

/** A GRU whose cell sees `inputs` values: one 61/253-wide feature slice through an equally wide encoder + 3 mask. */
function benchModel(inputs: number, hidden: number): Model {
  const width = inputs - 3;
  const layout = { audio: width, video: 0, text: 0, mask: 3 as const };
  const config: ModelConfig = parseModelConfig({
    inputLayout: layout,
    encoderUnits: { audio: width, video: 0, text: 0 },
    hidden,
    cell: 'gru',
    labels: Array.from({ length: 8 }, (_, i) => `l${i}`),
    head: 'sigmoid',
    featureConfig: null,
    normalization: identityNormalization(layout),
  });
  return createModel(config, randomWeights(config, { seed: 1, biasScale: 0.1 }));
}

interface Timing {
  median: number;
  p90: number;
  steps: number;
}

async function time(kernel: StepKernel, batch: number): Promise<Timing> {
  const { input, state, labels } = kernel.dims;
  const next = mulberry32(batch);
  const x = Float32Array.from({ length: batch * input }, () => next() * 2 - 1);
  let s = Float32Array.from({ length: batch * state }, () => next() * 2 - 1);
  let s2 = new Float32Array(batch * state);
  const y = new Float32Array(batch * labels);
  await kernel.step(batch, x, s, y, s2);
  await kernel.step(batch, x, s2, y, s);
  const samples: number[] = [];
  const until = performance.now() + BUDGET_MS;
  while (samples.length < 3 || (performance.now() < until && samples.length < 2000)) {
    const t0 = performance.now();
    await kernel.step(batch, x, s, y, s2);
    samples.push(performance.now() - t0);
    [s, s2] = [s2, s];
  }
  samples.sort((a, b) => a - b);
  return {
    median: samples[samples.length >> 1] as number,
    p90: samples[Math.floor(samples.length * 0.9)] as number,
    steps: samples.length,
  };
}

const fmt = (ms: number): string => (ms < 1 ? ms.toFixed(4) : ms < 100 ? ms.toFixed(3) : ms.toFixed(0));
const rate = (batch: number, ms: number): string => Math.round((batch * 1000) / ms).toLocaleString('en-US');

async function main(): Promise<void> {
  const available: BackendName[] = [];
  for (const b of BACKEND_NAMES) {
    const probe = await probeBackend(b);
    if (probe.available) available.push(b);
    else console.log(`skipped ${b}: ${probe.reason}`);
  }
  console.log(
    `\n${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}\n`,
  );
  console.log(
    '| backend | (inputs, hidden) | batch | step ms (median) | p90 ms | steps timed | windows/s | × tfjs cpu |',
  );
  console.log('|---|---|---:|---:|---:|---:|---:|---:|');
  for (const [inputs, hidden] of SHAPES) {
    const model = benchModel(inputs, hidden);
    const baseline = new Map<number, number>();
    // The baseline first, so every other row can be compared with it.
    const order = ['cpu', ...available.filter((b) => b !== 'cpu')] as BackendName[];
    for (const backend of order) {
      if (!available.includes(backend)) continue;
      const kernel = await createStepKernel(model, backend, Math.max(...BATCHES));
      for (const batch of BATCHES) {
        const t = await time(kernel, batch);
        if (backend === 'cpu') baseline.set(batch, t.median);
        const speedup = (baseline.get(batch) ?? Number.NaN) / t.median;
        console.log(
          `| ${backend} | (${inputs}, ${hidden}) | ${batch} | ${fmt(t.median)} | ${fmt(t.p90)} | ${t.steps} | ${rate(batch, t.median)} | ${speedup.toFixed(1)} |`,
        );
      }
      kernel.dispose();
    }
  }
  await tf.setBackend('cpu');
}

await main();
