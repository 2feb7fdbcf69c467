/**
 * Cost of running imported Keras models on the fused CPU kernel (cpu-fused): a GRU without reset_after and a fused
 * encoder (dense layers over the whole input), each against braid's own GRU in the same run, at (inputs, hidden) =
 * (64, 128); and the bundled demo model against its `braid export-model` → `braid import` twin (the per-modality
 * encoders become one block-diagonal Dense over all 350 inputs). Run: npx tsx bench/interop.ts [--quick]
 */
import { existsSync } from 'node:fs';
import { exportKerasModel } from '../src/interop/keras-export.js';
import { importKerasModel } from '../src/interop/keras-import.js';
import { liveWindowing } from '../src/interop/windowing.js';
import { type DenseLayerConfig, identityNormalization, parseModelConfig } from '../src/model/config.js';
import { FusedStepKernel } from '../src/model/fused-kernel.js';
import { loadModel } from '../src/model/model-io.js';
import { createModel, type Model, mulberry32, randomWeights } from '../src/model/weights.js';

const quick = process.argv.includes('--quick');
const BATCHES = quick ? [1, 256] : [1, 16, 256];
const BUDGET_MS = quick ? 150 : 600;

function model(variant: { resetAfter?: boolean; fusedEncoder?: DenseLayerConfig[] }): Model {
  const layout = { audio: 61, video: 0, text: 0, mask: 3 as const };
  const config = parseModelConfig({
    inputLayout: layout,
    encoderUnits: { audio: variant.fusedEncoder ? 0 : 61, video: 0, text: 0 },
    ...variant,
    hidden: 128,
    cell: 'gru',
    labels: Array.from({ length: 8 }, (_, i) => `l${i}`),
    head: 'sigmoid',
    featureConfig: null,
    normalization: identityNormalization(layout),
  });
  return createModel(config, randomWeights(config, { seed: 1, biasScale: 0.1 }));
}

/** Median ms of one step at this batch (after two warm-up steps). */
function median(kernel: FusedStepKernel, batch: number): number {
  const { input, state, labels } = kernel.dims;
  const next = mulberry32(batch);
  const x = Float32Array.from({ length: batch * input }, () => next() * 2 - 1);
  let s = new Float32Array(batch * state);
  let s2 = new Float32Array(batch * state);
  const y = new Float32Array(batch * labels);
  kernel.step(batch, x, s, y, s2);
  kernel.step(batch, x, s2, y, s);
  const samples: number[] = [];
  const until = performance.now() + BUDGET_MS;
  while (samples.length < 3 || (performance.now() < until && samples.length < 5000)) {
    const t0 = performance.now();
    kernel.step(batch, x, s, y, s2);
    samples.push(performance.now() - t0);
    [s, s2] = [s2, s];
  }
  samples.sort((a, b) => a - b);
  return samples[samples.length >> 1] as number;
}

function demoTwin(demo: Model): Model {
  const exported = exportKerasModel(demo);
  const files = { file: 'exported', topology: exported.topology, weights: exported.weights };
  return importKerasModel(
    files,
    {
      featureConfig: demo.config.featureConfig,
      inputLayout: demo.config.inputLayout,
      labels: demo.config.labels,
      windowing: liveWindowing(demo.config.windowing),
    },
    { exactNormalization: demo.config.normalization },
  ).model;
}

function print(rows: [string, Model, Model][]): void {
  console.log('| variant | batch | braid GRU ms | variant ms | ratio |');
  console.log('|---|---|---|---|---|');
  for (const [name, base, variant] of rows)
    for (const batch of BATCHES) {
      const a = new FusedStepKernel(base, batch);
      const b = new FusedStepKernel(variant, batch);
      // Alternate the two so machine noise hits both alike.
      const ta: number[] = [];
      const tb: number[] = [];
      for (let round = 0; round < 3; round++) {
        ta.push(median(a, batch));
        tb.push(median(b, batch));
      }
      const [ma, mb] = [Math.min(...ta), Math.min(...tb)];
      console.log(`| ${name} | ${batch} | ${ma.toFixed(4)} | ${mb.toFixed(4)} | ${(mb / ma).toFixed(2)} |`);
    }
}

async function run(): Promise<void> {
  const rows: [string, Model, Model][] = [
    ['GRU reset_after=false (64, 128)', model({}), model({ resetAfter: false })],
    [
      'fused encoder 64→61 relu (64, 128)',
      model({}),
      model({ fusedEncoder: [{ units: 61, activation: 'relu' }] }),
    ],
    [
      'fused encoder 64→64 relu→32 tanh (64, 128)',
      model({}),
      model({
        fusedEncoder: [
          { units: 64, activation: 'relu' },
          { units: 32, activation: 'tanh' },
        ],
      }),
    ],
  ];
  if (existsSync('models/demo')) {
    const demo = await loadModel('models/demo');
    rows.push(['demo model vs its export-model → import twin (350, 64)', demo, demoTwin(demo)]);
  }
  print(rows);
}

await run();
