import { existsSync } from 'node:fs';
import path from 'node:path';
import { describeWindowing, modelWindowing, type WindowingConfig } from '../align/windowing.js';
import { BraidError, InvalidOptionError } from '../core/errors.js';
import type { Micros } from '../core/time.js';
import { readModelEvents } from '../events/model-events.js';
import {
  type LabelEventSettings,
  type PartialEventSettings,
  resolveEventSettings,
  settingsFor,
} from '../events/settings.js';
import { parseFeatureConfig } from '../features/config.js';
import type { HeadType } from '../model/config.js';
import { loadModel } from '../model/model-io.js';
import { createModelParams, disposeParams } from '../model/tf-model.js';
import type { Model } from '../model/weights.js';
import { BASELINE_DIR, type Baseline, baselineLogits, loadBaseline, TrainableBaseline } from './baseline.js';
import {
  type ConditionIntervals,
  type ConditionRates,
  conditionIntervals,
  conditionRates,
  type Interval,
} from './condition-metrics.js';
import { assertDatasetMatchesModel, auxColumn, buildDataset, type Dataset, windowCount } from './dataset.js';
import { type EventEvaluation, evaluateEvents, type OnsetMetrics } from './event-metrics.js';
import { type BinaryMetrics, labelMetrics, type Thresholds } from './metrics.js';
import {
  DEFAULT_OPERATING_TARGETS,
  type OperatingIntervals,
  type OperatingPoints,
  type OperatingTargets,
  operatingIntervals,
  operatingPoints,
} from './operating-points.js';
import { sequenceLogits, sigmoid } from './recurrent.js';

export const TRAINING_REPORT = 'training-report.json';

/** The label `npm run data` records while a non-speech sound plays; `braid eval` scores false positives on it. */
export const DEFAULT_FPR_LABEL = 'distractor';

/** False positives of every label on the windows where one recorded, unpredicted label (a condition) is on. */
export interface ConditionEvaluation {
  /** Windows where the condition is on at the window's end. */
  readonly windows: number;
  readonly model: Readonly<Record<string, ConditionRates>>;
  /** 95 % intervals of the model's rate and recall there, by a bootstrap over recordings (conditionIntervals). */
  readonly modelIntervals: Readonly<Record<string, ConditionIntervals>>;
  readonly baseline: Readonly<Record<string, ConditionRates>> | null;
  /**
   * What the scores allow at any threshold (operating-points.ts): each label's recall at `targets.fpr` false positives
   * on the condition's windows, and its false-positive rate there at `targets.recall`, model (with 95 % intervals by a
   * bootstrap over recordings) and baseline.
   */
  readonly operating: {
    readonly targets: OperatingTargets;
    readonly model: Readonly<Record<string, OperatingPoints>>;
    readonly modelIntervals: Readonly<Record<string, OperatingIntervals>>;
    readonly baseline: Readonly<Record<string, OperatingPoints>> | null;
  };
}

export interface EvaluationReport {
  readonly labels: readonly string[];
  /** The score at or above which a label counts as on: one for all, or per label (`--threshold events`). */
  readonly threshold: Thresholds;
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
  /**
   * Per condition label (`--fpr-on`, default `distractor` where the recordings carry it): each label's false-positive
   * rate on the windows where the condition is on at the window's end and the label's target is off, model and
   * baseline; absent when no condition was scored.
   */
  readonly fprOn?: Readonly<Record<string, ConditionEvaluation>>;
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

/** The model's scores [windows × labels] of each sequence of a dataset, from a zero state per sequence. */
export function datasetScores(model: Model, dataset: Dataset): Float32Array[] {
  assertDatasetMatchesModel(dataset, model.config);
  const params = createModelParams(model);
  try {
    return sequenceLogits(params, model.config, dataset.sequences).map((l) =>
      headScores(l, model.config.head, dataset.labels.length),
    );
  } finally {
    disposeParams(params);
  }
}

/** Scores of the model (from a zero state per sequence) and the baseline, if any, on a dataset, per label. */
export function evaluateDataset(
  model: Model,
  baseline: Baseline | null,
  dataset: Dataset,
  threshold: Thresholds = 0.5,
  windowingSource: EvaluationReport['windowingSource'] = 'model',
  events?: EventScoring,
  targets: OperatingTargets = DEFAULT_OPERATING_TARGETS,
): EvaluationReport {
  const { sequences, labels } = dataset;
  const modelScores = datasetScores(model, dataset);
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
  const conditions = dataset.auxLabels ?? [];
  const sessionIds = [...new Set(sequences.map((s) => s.session))];
  const sessionOf = sequences.map((s) => sessionIds.indexOf(s.session));
  const fprOn: Record<string, ConditionEvaluation> = {};
  conditions.forEach((condition, c) => {
    const column = (s: (typeof sequences)[number]): Float32Array => auxColumn(s, c, conditions.length);
    const conditioned = (scores: Float32Array[]) =>
      sequences.map((s, i) => ({ scores: scores[i] as Float32Array, targets: s.y, condition: column(s) }));
    fprOn[condition] = {
      windows: sequences.reduce((n, s) => n + column(s).filter((v) => v > 0.5).length, 0),
      model: conditionRates(conditioned(modelScores), labels, threshold),
      modelIntervals: conditionIntervals(conditioned(modelScores), labels, threshold, { groups: sessionOf }),
      baseline: baselineScores ? conditionRates(conditioned(baselineScores), labels, threshold) : null,
      operating: {
        targets,
        model: operatingPoints(conditioned(modelScores), labels, targets),
        modelIntervals: operatingIntervals(conditioned(modelScores), labels, targets, { groups: sessionOf }),
        baseline: baselineScores ? operatingPoints(conditioned(baselineScores), labels, targets) : null,
      },
    };
  });
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
    ...(conditions.length > 0 && { fprOn }),
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
  threshold: number | typeof EVENT_THRESHOLDS = 0.5,
  events: {
    readonly overrides?: Readonly<Record<string, PartialEventSettings>>;
    readonly tolerance?: Micros;
  } = {},
  fprOn?: readonly string[],
  targets: OperatingTargets = DEFAULT_OPERATING_TARGETS,
): Promise<EvaluationReport> {
  const model = await loadModel(modelDir);
  const baseline = existsSync(path.join(modelDir, BASELINE_DIR)) ? await loadBaseline(modelDir) : null;
  const { windowing, source } = modelWindowing(model.config.windowing);
  const predicted = model.config.labels;
  for (const label of fprOn ?? [])
    if (predicted.includes(label))
      throw new InvalidOptionError(
        'fpr-on',
        `"${label}" is a label the model predicts (${predicted.join(', ')}); name a recorded label it does not`,
      );
  // By default the distractor label, where the recordings carry it and the model does not predict it.
  const asked = fprOn ?? (predicted.includes(DEFAULT_FPR_LABEL) ? [] : [DEFAULT_FPR_LABEL]);
  const built = await buildDataset(recordings, {
    featureConfig: parseFeatureConfig(model.config.featureConfig, 'model.featureConfig'),
    windowing,
    labels: predicted,
    auxLabels: asked,
  });
  const carried = asked.filter((_, c) =>
    built.sequences.some((s) => s.aux?.some((v, i) => i % asked.length === c && !Number.isNaN(v))),
  );
  if (fprOn !== undefined && carried.length < asked.length)
    throw new BraidError(
      'BRAID_ERR_DATASET',
      `--fpr-on: no recording carries the label ${asked
        .filter((l) => !carried.includes(l))
        .map((l) => `"${l}"`)
        .join(', ')}`,
    );
  const dataset = carried.length === asked.length ? built : withoutAux(built);
  // The events the model's directory and --events make live (docs/events.md), checked before the slow part.
  const settings = resolveEventSettings(
    model.config.labels,
    await readModelEvents(modelDir),
    events.overrides,
  );
  return evaluateDataset(
    model,
    baseline,
    dataset,
    threshold === EVENT_THRESHOLDS ? eventThresholds(settings, model.config.labels) : threshold,
    source,
    {
      settings,
      tolerance: events.tolerance ?? DEFAULT_ONSET_TOLERANCE,
    },
    targets,
  );
}

/**
 * `braid eval --threshold events`: each label counts as on where its live events would turn on, at its `on` score
 * (events.json, then --events; the default for labels neither names), so a threshold validated by braid train is
 * scored as served.
 */
export const EVENT_THRESHOLDS = 'events';

/** Each label's `on` score. */
export const eventThresholds = (
  settings: LabelEventSettings,
  labels: readonly string[],
): Record<string, number> => Object.fromEntries(labels.map((l) => [l, settingsFor(settings, l).on]));

/** A threshold for the report's first line: "0.5", or "per label: speech 0.253, motion 0.6". */
export const describeThresholds = (threshold: Thresholds): string =>
  typeof threshold === 'number'
    ? String(threshold)
    : `per label (their events' on): ${Object.entries(threshold)
        .map(([l, t]) => `${l} ${Number(t.toPrecision(4))}`)
        .join(', ')}`;

/** The dataset with no aux labels (the default one was asked for and no recording carries it). */
function withoutAux(dataset: Dataset): Dataset {
  return {
    ...dataset,
    auxLabels: [],
    sequences: dataset.sequences.map(({ aux: _aux, ...s }) => s),
  };
}

const f3 = (v: number | null): string => (v === null ? '  n/a' : v.toFixed(3));

const pct = (v: number | null): string => (v === null ? 'n/a' : `${(100 * v).toFixed(1)}%`);

/**
 * A plain-text table: per label, the model's and the baseline's precision, recall, F1, AUC and false-positive rate on
 * each condition's windows (`FPR@distractor`), and ΔF1 (the model's columns only, and a note, for a model without a
 * baseline); then the conditions' counts, and the events.
 */
export function formatEvaluation(report: EvaluationReport): string {
  const base = report.baseline;
  const conditions = Object.entries(report.fprOn ?? {});
  const fprHeader = conditions.map(([name]) => `FPR@${name}`);
  const header = [
    'label',
    'model P',
    'R',
    'F1',
    'AUC',
    ...fprHeader,
    ...(base ? ['baseline P', 'R', 'F1', 'AUC', ...fprHeader, 'ΔF1'] : []),
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
      ...conditions.map(([, c]) => pct(c.model[label]?.rate ?? null)),
      ...(b
        ? [
            f3(b.precision),
            f3(b.recall),
            f3(b.f1),
            f3(b.auc),
            ...conditions.map(([, c]) => pct(c.baseline?.[label]?.rate ?? null)),
            `${m.f1 - b.f1 >= 0 ? '+' : ''}${(m.f1 - b.f1).toFixed(3)}`,
          ]
        : []),
      `${m.positives}/${m.positives + m.negatives}`,
    ];
  });
  const windowing =
    report.windowingSource === 'default'
      ? `the live default, as served (the model has no saved windowing): ${describeWindowing(report.windowing)}`
      : `the model's own: ${describeWindowing(report.windowing)}`;
  return [
    `${report.windows} windows from ${report.sessions.length} recordings, threshold ${describeThresholds(report.threshold)}${base ? '' : ' (no memoryless baseline: the model was not trained by braid train)'}`,
    `windowing: ${windowing}`,
    ...alignTable(header, rows),
    ...conditions.flatMap(([name, c]) => ['', ...formatCondition(report.labels, name, c)]),
    ...(report.events ? ['', ...formatEvents(report.labels, report.events)] : []),
  ].join('\n');
}

/** Columns padded to their widest cell: the first left-aligned, the others right-aligned. */
function alignTable(header: readonly string[], rows: readonly string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number)))
      .join('  ');
  return [line(header), ...rows.map(line)];
}

/** One condition's counts: per label, its off windows with the condition on and off, and the false positives. */
function formatCondition(labels: readonly string[], name: string, c: ConditionEvaluation): string[] {
  const count = (r: ConditionRates | undefined, on: boolean): string =>
    r === undefined
      ? 'n/a'
      : on
        ? `${r.falsePositives}/${r.negatives}`
        : `${r.otherFalsePositives}/${r.otherNegatives}`;
  const recall = (r: ConditionRates | undefined): string =>
    r === undefined ? 'n/a' : `${r.truePositives}/${r.positives} ${pct(r.recall)}`;
  const within = (i: Interval | null | undefined): string =>
    i == null ? '' : ` (${pct(i[0])}–${pct(i[1])})`;
  const header = [
    'label',
    `model FP/off, ${name} on`,
    `${name} off`,
    `TP/on, ${name} on`,
    ...(c.baseline ? [`baseline FP/off, ${name} on`, `${name} off`, `TP/on, ${name} on`] : []),
  ];
  const rows = labels.map((label) => [
    label,
    `${count(c.model[label], true)} ${pct(c.model[label]?.rate ?? null)}${within(c.modelIntervals[label]?.rate)}`,
    `${count(c.model[label], false)} ${pct(c.model[label]?.otherRate ?? null)}`,
    `${recall(c.model[label])}${within(c.modelIntervals[label]?.recall)}`,
    ...(c.baseline
      ? [
          `${count(c.baseline[label], true)} ${pct(c.baseline[label]?.rate ?? null)}`,
          `${count(c.baseline[label], false)} ${pct(c.baseline[label]?.otherRate ?? null)}`,
          recall(c.baseline[label]),
        ]
      : []),
  ]);
  return [
    `false positives and recall where "${name}" is on (${c.windows} windows with "${name}" on at the window's end; FP/off counts the windows where the label's target is off there, TP/on those where it is on; in brackets the model's 95 % interval by a bootstrap over recordings):`,
    ...alignTable(header, rows),
    '',
    ...formatOperating(labels, name, c.operating),
  ];
}

/** The operating points on one condition: recall at the FPR target, FPR at the recall target, model and baseline. */
function formatOperating(
  labels: readonly string[],
  name: string,
  o: ConditionEvaluation['operating'],
): string[] {
  const atFpr = `recall at FPR@${name} ≤ ${pct(o.targets.fpr)}`;
  const atRecall = `FPR@${name} at recall ≥ ${f3(o.targets.recall)}`;
  const within = (i: Interval | null | undefined, as: (v: number | null) => string): string =>
    i == null ? '' : ` (${as(i[0])}–${as(i[1])})`;
  const point = (p: OperatingPoints | undefined, i: OperatingIntervals | undefined): string[] =>
    p === undefined || p.recallAtFpr === null
      ? ['n/a', 'n/a']
      : [
          `${f3(p.recallAtFpr)}${within(i?.recallAtFpr, f3)}${p.thresholdAtFpr === null ? '' : ` above ${f3(p.thresholdAtFpr)}`}`,
          `${pct(p.rateAtRecall)}${within(i?.rateAtRecall, pct)}${p.thresholdAtRecall === null ? '' : ` from ${f3(p.thresholdAtRecall)}`}`,
        ];
  const header = [
    'label',
    `model ${atFpr}`,
    atRecall,
    ...(o.baseline ? [`baseline ${atFpr}`, atRecall] : []),
  ];
  const rows = labels.map((label) => [
    label,
    ...point(o.model[label], o.modelIntervals[label]),
    ...(o.baseline ? point(o.baseline[label], undefined) : []),
  ]);
  return [
    `operating points on "${name}" (the threshold chosen on these windows, so what the scores allow at any threshold rather than what --threshold gives; recall over every window where the label's target is on; in brackets the model's 95 % interval by a bootstrap over recordings):`,
    ...alignTable(header, rows),
  ];
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
  return [
    `events (the live state machine over the model's scores; an on event within ±${events.toleranceMs} ms of a true onset finds it; error = event − onset, positive: late):`,
    ...alignTable(header, rows),
  ];
}
