import { describeWindowing, modelWindowing, type WindowingConfig } from '../align/windowing.js';
import { parseFeatureConfig } from '../features/config.js';
import { loadModel } from '../model/model-io.js';
import { createModelParams, disposeParams } from '../model/tf-model.js';
import type { Model } from '../model/weights.js';
import { type Baseline, baselineLogits, loadBaseline, TrainableBaseline } from './baseline.js';
import { assertDatasetMatchesModel, buildDataset, type Dataset, windowCount } from './dataset.js';
import { type BinaryMetrics, labelMetrics } from './metrics.js';
import { sequenceLogits, sigmoid } from './recurrent.js';

export const TRAINING_REPORT = 'training-report.json';

export interface EvaluationReport {
  readonly labels: readonly string[];
  readonly threshold: number;
  readonly sessions: readonly string[];
  readonly windows: number;
  /** The windowing the recordings were cut with: the model's own, as serve, replay and live use it. */
  readonly windowing: WindowingConfig;
  /** `model` when saved with the model, `default` for a model saved without one (then the live default, as served). */
  readonly windowingSource: 'model' | 'default';
  /** The recurrent model, per label. */
  readonly model: Readonly<Record<string, BinaryMetrics>>;
  /** The memoryless baseline trained on the same windows, per label. */
  readonly baseline: Readonly<Record<string, BinaryMetrics>>;
}

/** Scores of the model (from a zero state per sequence) and the baseline on a dataset, per label. */
export function evaluateDataset(
  model: Model,
  baseline: Baseline,
  dataset: Dataset,
  threshold = 0.5,
  windowingSource: EvaluationReport['windowingSource'] = 'model',
): EvaluationReport {
  assertDatasetMatchesModel(dataset, model.config);
  const { sequences, labels } = dataset;
  const params = createModelParams(model);
  let modelScores: Float32Array[];
  try {
    modelScores = sequenceLogits(params, model.config, sequences).map(sigmoid);
  } finally {
    disposeParams(params);
  }
  const trainable = new TrainableBaseline(baseline);
  let baselineScores: Float32Array[];
  try {
    baselineScores = baselineLogits(trainable, sequences).map(sigmoid);
  } finally {
    trainable.dispose();
  }
  const blocks = (scores: Float32Array[]) =>
    sequences.map((s, i) => ({ scores: scores[i] as Float32Array, targets: s.y }));
  return {
    labels,
    threshold,
    sessions: [...new Set(sequences.map((s) => s.session))],
    windows: windowCount(sequences),
    windowing: dataset.windowing,
    windowingSource,
    model: labelMetrics(blocks(modelScores), labels, threshold),
    baseline: labelMetrics(blocks(baselineScores), labels, threshold),
  };
}

/**
 * `braid eval`: loads a model directory written by `braid train` (model and baseline), builds the recordings'
 * dataset with the model's feature config, labels and windowing — the same windowing `serve`, `replay` and `live`
 * run it with (src/align/windowing.ts) — and scores both side by side. An invalid saved windowing is an error; a model
 * saved without one is scored with the live default and the report says so (`windowingSource`).
 */
export async function evaluateModel(
  modelDir: string,
  recordings: readonly string[],
  threshold = 0.5,
): Promise<EvaluationReport> {
  const model = await loadModel(modelDir);
  const baseline = await loadBaseline(modelDir);
  const { windowing, source } = modelWindowing(model.config.windowing);
  const dataset = await buildDataset(recordings, {
    featureConfig: parseFeatureConfig(model.config.featureConfig, 'model.featureConfig'),
    windowing,
    labels: model.config.labels,
  });
  return evaluateDataset(model, baseline, dataset, threshold, source);
}

const f3 = (v: number | null): string => (v === null ? '  n/a' : v.toFixed(3));

/** A plain-text table: per label, the model's and the baseline's precision, recall, F1 and AUC, and ΔF1. */
export function formatEvaluation(report: EvaluationReport): string {
  const header = ['label', 'model P', 'R', 'F1', 'AUC', 'baseline P', 'R', 'F1', 'AUC', 'ΔF1', 'positives'];
  const rows = report.labels.map((label) => {
    const m = report.model[label] as BinaryMetrics;
    const b = report.baseline[label] as BinaryMetrics;
    return [
      label,
      f3(m.precision),
      f3(m.recall),
      f3(m.f1),
      f3(m.auc),
      f3(b.precision),
      f3(b.recall),
      f3(b.f1),
      f3(b.auc),
      `${m.f1 - b.f1 >= 0 ? '+' : ''}${(m.f1 - b.f1).toFixed(3)}`,
      `${m.positives}/${m.positives + m.negatives}`,
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number)))
      .join('  ');
  const windowing =
    report.windowingSource === 'default'
      ? `the live default, as served (the model has no saved windowing): ${describeWindowing(report.windowing)}`
      : `the model's own: ${describeWindowing(report.windowing)}`;
  return [
    `${report.windows} windows from ${report.sessions.length} recordings, threshold ${report.threshold}`,
    `windowing: ${windowing}`,
    line(header),
    ...rows.map(line),
  ].join('\n');
}
