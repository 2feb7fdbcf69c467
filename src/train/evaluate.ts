import { existsSync } from 'node:fs';
import path from 'node:path';
import { describeWindowing, modelWindowing, type WindowingConfig } from '../align/windowing.js';
import type { Micros } from '../core/time.js';
import { readModelEvents } from '../events/model-events.js';
import {
  type LabelEventSettings,
  type PartialEventSettings,
  resolveEventSettings,
} from '../events/settings.js';
import { parseFeatureConfig } from '../features/config.js';
import type { HeadType } from '../model/config.js';
import { loadModel } from '../model/model-io.js';
import { createModelParams, disposeParams } from '../model/tf-model.js';
import type { Model } from '../model/weights.js';
import { BASELINE_DIR, type Baseline, baselineLogits, loadBaseline, TrainableBaseline } from './baseline.js';
import { assertDatasetMatchesModel, buildDataset, type Dataset, windowCount } from './dataset.js';
import { type EventEvaluation, evaluateEvents, type OnsetMetrics } from './event-metrics.js';
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
  /**
   * The memoryless baseline trained on the same windows, per label; null for a model without one (imported with
   * braid import rather than trained by braid train).
   */
  readonly baseline: Readonly<Record<string, BinaryMetrics>> | null;
  /** The model's on events (the live state machine over its scores) against the true onsets; absent when not asked. */
  readonly events?: EventEvaluation;
}

/** How `braid eval` makes and scores events: the settings serve and replay would use, and the matching tolerance. */
export interface EventScoring {
  readonly settings: LabelEventSettings;
  /** An event within this of a true onset (either side) finds it. */
  readonly tolerance: Micros;
}

/** Default tolerance of an onset match: two windows of the live default. */
export const DEFAULT_ONSET_TOLERANCE: Micros = 1_000_000;

/** Scores from a sequence's logits [windows × labels]: the model's head, sigmoid per label or softmax per window. */
function headScores(logits: Float32Array, head: HeadType, labels: number): Float32Array {
  if (head === 'sigmoid') return sigmoid(logits);
  const out = new Float32Array(logits.length);
  for (let at = 0; at < logits.length; at += labels) {
    const row = logits.subarray(at, at + labels);
    const max = Math.max(...row);
    let sum = 0;
    for (const v of row) sum += Math.exp(v - max);
    row.forEach((v, j) => {
      out[at + j] = Math.exp(v - max) / sum;
    });
  }
  return out;
}

/** Scores of the model (from a zero state per sequence) and the baseline, if any, on a dataset, per label. */
export function evaluateDataset(
  model: Model,
  baseline: Baseline | null,
  dataset: Dataset,
  threshold = 0.5,
  windowingSource: EvaluationReport['windowingSource'] = 'model',
  events?: EventScoring,
): EvaluationReport {
  assertDatasetMatchesModel(dataset, model.config);
  const { sequences, labels } = dataset;
  const params = createModelParams(model);
  let modelScores: Float32Array[];
  try {
    modelScores = sequenceLogits(params, model.config, sequences).map((l) =>
      headScores(l, model.config.head, labels.length),
    );
  } finally {
    disposeParams(params);
  }
  let baselineScores: Float32Array[] | undefined;
  if (baseline) {
    const trainable = new TrainableBaseline(baseline);
    try {
      baselineScores = baselineLogits(trainable, sequences).map(sigmoid);
    } finally {
      trainable.dispose();
    }
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
    baseline: baselineScores ? labelMetrics(blocks(baselineScores), labels, threshold) : null,
    ...(events && {
      events: evaluateEvents(sequences, modelScores, labels, events.settings, events.tolerance),
    }),
  };
}

/**
 * `braid eval`: loads a model directory (written by `braid train`, or `braid import`, which has no baseline), builds
 * the recordings' dataset with the model's feature config, windowing and labels, and scores the model and its
 * baseline side by side. The windowing is the model's own, read as serve, replay and live read it
 * (src/align/windowing.ts): an invalid one is an error; a model saved without one is scored with the live default
 * and the report says so (`windowingSource`); the training report is not read.
 */
export async function evaluateModel(
  modelDir: string,
  recordings: readonly string[],
  threshold = 0.5,
  events: {
    readonly overrides?: Readonly<Record<string, PartialEventSettings>>;
    readonly tolerance?: Micros;
  } = {},
): Promise<EvaluationReport> {
  const model = await loadModel(modelDir);
  const baseline = existsSync(path.join(modelDir, BASELINE_DIR)) ? await loadBaseline(modelDir) : null;
  const { windowing, source } = modelWindowing(model.config.windowing);
  const dataset = await buildDataset(recordings, {
    featureConfig: parseFeatureConfig(model.config.featureConfig, 'model.featureConfig'),
    windowing,
    labels: model.config.labels,
  });
  // The events the model's directory and --events make live (docs/events.md), checked before the slow part.
  const settings = resolveEventSettings(
    model.config.labels,
    await readModelEvents(modelDir),
    events.overrides,
  );
  return evaluateDataset(model, baseline, dataset, threshold, source, {
    settings,
    tolerance: events.tolerance ?? DEFAULT_ONSET_TOLERANCE,
  });
}

const f3 = (v: number | null): string => (v === null ? '  n/a' : v.toFixed(3));

/**
 * A plain-text table: per label, the model's and the baseline's precision, recall, F1 and AUC, and ΔF1 (the model's
 * columns only, and a note, for a model without a baseline).
 */
export function formatEvaluation(report: EvaluationReport): string {
  const base = report.baseline;
  const header = [
    'label',
    'model P',
    'R',
    'F1',
    'AUC',
    ...(base ? ['baseline P', 'R', 'F1', 'AUC', 'ΔF1'] : []),
    'positives',
  ];
  const rows = report.labels.map((label) => {
    const m = report.model[label] as BinaryMetrics;
    const b = base?.[label];
    return [
      label,
      f3(m.precision),
      f3(m.recall),
      f3(m.f1),
      f3(m.auc),
      ...(b
        ? [
            f3(b.precision),
            f3(b.recall),
            f3(b.f1),
            f3(b.auc),
            `${m.f1 - b.f1 >= 0 ? '+' : ''}${(m.f1 - b.f1).toFixed(3)}`,
          ]
        : []),
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
    `${report.windows} windows from ${report.sessions.length} recordings, threshold ${report.threshold}${base ? '' : ' (no memoryless baseline: the model was not trained by braid train)'}`,
    `windowing: ${windowing}`,
    line(header),
    ...rows.map(line),
    ...(report.events ? ['', ...formatEvents(report.labels, report.events)] : []),
  ].join('\n');
}

const ms = (v: number | null): string => (v === null ? 'n/a' : v.toFixed(0));

/** The event table: per label, true onsets, on events, matched, missed, false, and the onset error in ms. */
function formatEvents(labels: readonly string[], events: EventEvaluation): string[] {
  const header = ['label', 'onsets', 'on events', 'matched', 'missed', 'false', '|error| ms', 'error ms'];
  const rows = labels.map((label) => {
    const m = events.labels[label] as OnsetMetrics;
    return [
      label,
      String(m.onsets),
      String(m.predicted),
      String(m.matched),
      String(m.missed),
      String(m.false),
      ms(m.meanAbsErrorMs),
      ms(m.meanErrorMs),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number)))
      .join('  ');
  return [
    `events (the live state machine over the model's scores; an on event within ±${events.toleranceMs} ms of a true onset finds it; error = event − onset, positive: late):`,
    line(header),
    ...rows.map(line),
  ];
}
