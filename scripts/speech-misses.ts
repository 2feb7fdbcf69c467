// Where a model's speech misses are at the threshold giving 5 % FPR on distractor
// windows (docs/model.md, "Where speech is missed"): onset windows by how much speech they hold, and windows inside a
// prompt. Usage: npx tsx scripts/speech-misses.ts MODEL_DIR DIR_OF_MCAP (sessions of `npm run data`)
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { modelWindowing } from '../src/align/windowing.js';
import { parseFeatureConfig } from '../src/features/config.js';
import { loadModel } from '../src/model/model-io.js';
import { createModelParams } from '../src/model/tf-model.js';
import { buildDataset } from '../src/train/dataset.js';
import { operatingPoints } from '../src/train/operating-points.js';
import { sequenceLogits, sigmoid } from '../src/train/recurrent.js';
import { useTrainingBackend } from '../src/train/tf-setup.js';

const [modelDir, dir] = process.argv.slice(2) as [string, string];
await useTrainingBackend('wasm');
const model = await loadModel(modelDir);
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.mcap'))
  .map((f) => path.join(dir, f));
const aux = ['distractor', 'distractor_music', 'voice_en', 'voice_en-g722'];
const ds = await buildDataset(files, {
  featureConfig: parseFeatureConfig(model.config.featureConfig, 'm'),
  windowing: modelWindowing(model.config.windowing).windowing,
  labels: model.config.labels,
  auxLabels: aux,
});
const L = model.config.labels.length;
const sp = model.config.labels.indexOf('speech');
const audio = ds.featureConfig.audio;
// The RMS max's place in the fused inputs (audio comes first): after the mel aggregates, among the RMS ones.
const rmsMaxAt = audio.melBands * audio.melAggregates.length + audio.rmsAggregates.indexOf('max');
if (rmsMaxAt < audio.melBands * audio.melAggregates.length)
  throw new Error('the model has no RMS max feature');
const params = createModelParams(model);
const scores = sequenceLogits(params, model.config, ds.sequences).map(sigmoid);
interface Row {
  score: number;
  since: number; // µs since the latest speech onset at the window's end (Infinity: none in this window)
  prevScore: number;
  rmsMax: number;
  voice: string;
}
const pos: Row[] = [];
let distractorWindows = 0;
const music: number[] = [];
ds.sequences.forEach((s, i) => {
  const on = s.onsets?.speech ?? [];
  const sc = scores[i] as Float32Array;
  for (let w = 0; w < s.windows.length; w++) {
    const y = s.y[w * L + sp] as number;
    const score = sc[w * L + sp] as number;
    const win = s.windows[w];
    if (!win) continue;
    const d = s.aux?.[w * aux.length] ?? Number.NaN;
    if (y > 0.5) {
      const last = on.filter((t) => t <= win.end).at(-1);
      const since = last !== undefined && last > win.start ? win.end - last : Number.POSITIVE_INFINITY;
      pos.push({
        score,
        since,
        prevScore: w > 0 ? (sc[(w - 1) * L + sp] as number) : Number.NaN,
        rmsMax: s.x[w * ds.inputWidth + rmsMaxAt] as number,
        voice:
          (s.aux?.[w * aux.length + 2] ?? 0) > 0.5
            ? 'en'
            : (s.aux?.[w * aux.length + 3] ?? 0) > 0.5
              ? 'g722'
              : 'other',
      });
    } else if (d > 0.5) {
      distractorWindows++;
      if ((s.aux?.[w * aux.length + 1] ?? 0) > 0.5) music.push(score);
    }
  }
});
// The threshold `braid eval` reports for recall at 5 % FPR: the label is on above it.
const points = operatingPoints(
  ds.sequences.map((s, i) => ({
    scores: scores[i] as Float32Array,
    targets: s.y,
    condition: Float32Array.from(s.windows, (_, w) => s.aux?.[w * aux.length] ?? Number.NaN),
  })),
  model.config.labels,
  { fpr: 0.05, recall: 0.95 },
);
const thr = points.speech?.thresholdAtFpr ?? Number.NEGATIVE_INFINITY;
console.log(
  `positives ${pos.length}, distractor windows ${distractorWindows}, threshold at 5 % FPR ${thr.toFixed(3)}`,
);
console.log(`music windows ${music.length}, above threshold ${music.filter((v) => v > thr).length}`);
const bins: [string, (r: Row) => boolean][] = [
  ['onset <100ms', (r) => r.since < 100_000],
  ['onset 100-250ms', (r) => r.since >= 100_000 && r.since < 250_000],
  ['onset 250-500ms', (r) => r.since >= 250_000 && r.since <= 500_000],
  ['interior', (r) => !Number.isFinite(r.since)],
];
const missed = pos.filter((r) => r.score <= thr).length;
console.log(`recall ${(1 - missed / pos.length).toFixed(3)}, missed ${missed}`);
for (const [name, f] of bins) {
  const rows = pos.filter(f);
  const m = rows.filter((r) => r.score <= thr).length;
  console.log(
    `${name.padEnd(16)} windows ${String(rows.length).padStart(5)} missed ${String(m).padStart(4)} (${((100 * m) / Math.max(1, missed)).toFixed(0)} % of misses) recall ${(1 - m / Math.max(1, rows.length)).toFixed(3)}`,
  );
}
// Interior misses: is the previous window speech too (a pause within a prompt)?
const interiorRows = pos.filter((r) => !Number.isFinite(r.since));
const interior = interiorRows.filter((r) => r.score <= thr);
console.log(
  `interior misses with previous window above threshold: ${interior.filter((r) => r.prevScore > thr).length}`,
);
// Needed recall 0.95: what if onset windows of < X ms were excluded
for (const cut of [100_000, 250_000, 500_000]) {
  const kept = pos.filter((r) => !(r.since < cut));
  const m = kept.filter((r) => r.score <= thr).length;
  console.log(
    `excluding onset windows with < ${cut / 1000} ms of speech: recall ${(1 - m / kept.length).toFixed(3)}`,
  );
}

const q = (v: number[], p: number) => v.sort((a, b) => a - b)[Math.floor(p * (v.length - 1))]?.toFixed(3);
for (const [name, rows] of [
  ['interior missed', interior],
  ['interior hit', interiorRows.filter((r) => r.score > thr)],
] as const) {
  const rm = rows.map((r) => r.rmsMax);
  console.log(`${name}: rms max p10/50/90 ${q(rm, 0.1)} ${q(rm, 0.5)} ${q(rm, 0.9)}`);
  const by: Record<string, number> = {};
  for (const r of rows) by[r.voice] = (by[r.voice] ?? 0) + 1;
  console.log(`  by voice ${JSON.stringify(by)}`);
}
