import { createHash } from 'node:crypto';
import { type SavedWindowing, saveWindowing } from '../align/windowing.js';
import { BraidError, InvalidOptionError } from '../core/errors.js';
import type { CellType, FeatureModality } from '../model/config.js';
import type { Model } from '../model/weights.js';
import {
  type Baseline,
  type BaselineConfig,
  BaselineLearner,
  baselineLogits,
  initialBaseline,
  TrainableBaseline,
} from './baseline.js';
import type { Dataset, Sequence, SessionSummary } from './dataset.js';
import { auxColumn, windowCount } from './dataset.js';
import { type EpochRecord, type FitResult, type OptimizerName, type StopReason, trainLoop } from './fit.js';
import { type SessionSplit, sessionSplits } from './folds.js';
import { type BinaryMetrics, labelMetrics, macroF1 } from './metrics.js';
import { computeNormalization } from './normalization.js';
import { DEFAULT_OPERATING_TARGETS, type OperatingPoints, operatingPoints } from './operating-points.js';
import { buildModelConfig, RecurrentLearner, sequenceLogits, sigmoid, TrainableModel } from './recurrent.js';
import { chooseSize, describeSelection, LOSS_SELECTION, type SelectionCriterion } from './selection.js';
import { deriveSeed } from './shuffle.js';
import { type ValidatedThreshold, validatedThreshold } from './validated-threshold.js';
import { applyWindowWeights, type WindowWeights } from './window-weights.js';

export interface TrainOptions {
  readonly cell: CellType;
  /** Hidden sizes to compare by cross-validation; the best is retrained on all sessions. */
  readonly hiddenSizes: readonly number[];
  readonly encoderUnits: Readonly<Record<FeatureModality, number>>;
  /** k ≥ 2: k-fold cross-validation by session; 1: one hold-out split of `valFraction` of the sessions. */
  readonly folds: number;
  readonly valFraction: number;
  /** Windows per truncated back-propagation chunk. */
  readonly chunk: number;
  /** Sequences per minibatch. */
  readonly batchSize: number;
  readonly maxEpochs: number;
  readonly patience: number;
  readonly learningRate: number;
  readonly optimizer: OptimizerName;
  /** Global-norm gradient clipping; Infinity turns it off. */
  readonly clipnorm: number;
  /** L2 penalty on kernels (weight decay), for the model and the baseline alike. */
  readonly l2: number;
  readonly seed: number;
  /** Hidden units of the memoryless baseline MLP (0: logistic regression). */
  readonly baselineHidden: number;
  /** Windows per baseline minibatch. */
  readonly baselineBatchSize: number;
  /**
   * Loss weights of windows where a recorded label is on (the dataset must be read with them as aux labels), for
   * the model and the baseline alike; validation losses, and so early stopping and the choice of size, stay
   * unweighted.
   */
  readonly windowWeights: WindowWeights;
  /** How the hidden size is chosen (selection.ts); a recall criterion's condition must be read with the dataset. */
  readonly selectBy: SelectionCriterion;
}

export const DEFAULT_TRAIN_OPTIONS: TrainOptions = {
  cell: 'gru',
  hiddenSizes: [32],
  encoderUnits: { audio: 32, video: 32, text: 16 },
  folds: 1,
  valFraction: 0.2,
  chunk: 20,
  batchSize: 8,
  maxEpochs: 60,
  patience: 6,
  learningRate: 3e-3,
  optimizer: 'adam',
  clipnorm: 1,
  l2: 1e-4,
  seed: 1,
  baselineHidden: 32,
  baselineBatchSize: 64,
  windowWeights: {},
  selectBy: LOSS_SELECTION,
};

export type RunPhase = 'cv' | 'final' | 'baseline-cv' | 'baseline-final';

/** Which training run is going on, for progress displays. */
export interface RunInfo {
  readonly phase: RunPhase;
  /** 0-based fold, absent for final runs. */
  readonly fold?: number;
  readonly folds: number;
  readonly hidden: number;
  readonly maxEpochs: number;
}

export interface ProgressListener {
  runStart?(run: RunInfo): void;
  epoch?(run: RunInfo, record: EpochRecord): void;
  runEnd?(run: RunInfo, result: FitResult): void;
}

/** One training run of cross-validation, with its validation figures at the restored (best) epoch. */
export interface FoldReport {
  readonly fold: number;
  readonly hidden: number;
  readonly trainSessions: readonly string[];
  readonly validationSessions: readonly string[];
  readonly trainWindows: number;
  readonly validationWindows: number;
  readonly bestEpoch: number;
  readonly bestValLoss: number;
  readonly stopReason: StopReason;
  readonly validationF1: number;
  readonly validation: Readonly<Record<string, BinaryMetrics>>;
  /**
   * Per recorded (not learnt) label read with the dataset (--window-weight and --select-by names), each learnt
   * label's operating points on the validation windows where it is on (DEFAULT_OPERATING_TARGETS: recall at 5 % false
   * positives there, false positives at recall 0.95). The validation loss ranks runs by how well they fit the average
   * window; issue 20's target is these points, on sounds no run was trained on. Absent without recorded labels.
   */
  readonly validationOperating?: Readonly<Record<string, Readonly<Record<string, OperatingPoints>>>>;
  readonly history: readonly EpochRecord[];
}

export interface SizeReport {
  readonly hidden: number;
  readonly meanValLoss: number;
  readonly meanValF1: number;
  readonly meanBestEpoch: number;
  readonly folds: readonly FoldReport[];
}

export interface FinalRunReport {
  readonly hidden: number;
  readonly epochs: number;
  /** With validation data: the run is the chosen size's validated one, at its best epoch, not a retrain. */
  readonly validated?: boolean;
  readonly trainSessions: number;
  readonly trainWindows: number;
  readonly history: readonly EpochRecord[];
}

export interface TrainingReport {
  readonly format: 'braid-training-report';
  readonly version: 1;
  readonly createdAt: string;
  readonly labels: readonly string[];
  /** The windowing the dataset was built with, as saved in model.json too. */
  readonly windowing: SavedWindowing;
  readonly options: TrainOptions;
  readonly dataset: {
    readonly sessions: readonly SessionSummary[];
    readonly sequences: number;
    readonly windows: number;
  };
  /** The recordings given as validation data (trainModel's `validationData`), absent when validation is split off. */
  readonly validationData?: {
    readonly sessions: readonly SessionSummary[];
    readonly sequences: number;
    readonly windows: number;
  };
  readonly selection: {
    readonly criterion: string;
    readonly sizes: readonly SizeReport[];
    readonly chosenHidden: number;
  };
  readonly final: FinalRunReport;
  /**
   * With validation data and a recall-at-fpr criterion: the shipped run's threshold at the false-positive target on
   * its validation windows, written to the model's events.json; absent otherwise.
   */
  readonly validatedThreshold?: ValidatedThreshold;
  readonly baseline: { readonly size: SizeReport; readonly final: FinalRunReport };
  readonly seconds: number;
}

export interface TrainingOutcome {
  readonly model: Model;
  readonly baseline: Baseline;
  readonly report: TrainingReport;
}

/** Operating points of a fold's validation scores on each recorded label (FoldReport.validationOperating). */
function validationOperatingPoints(
  validation: readonly Sequence[],
  scored: readonly { readonly scores: Float32Array; readonly targets: Float32Array }[],
  labels: readonly string[],
  auxLabels: readonly string[],
): Record<string, Record<string, OperatingPoints>> | undefined {
  if (auxLabels.length === 0 || validation.length === 0) return undefined;
  return Object.fromEntries(
    auxLabels.map((name, c) => [
      name,
      operatingPoints(
        scored.map((b, i) => ({
          ...b,
          condition: auxColumn(validation[i] as Sequence, c, auxLabels.length),
        })),
        labels,
        DEFAULT_OPERATING_TARGETS,
      ),
    ]),
  );
}

/** A recall criterion names a learnt label and a recorded one read with the dataset, or training would rank nothing. */
function checkSelection(criterion: SelectionCriterion, dataset: Dataset): void {
  if (criterion.kind === 'loss') return;
  if (!dataset.labels.includes(criterion.label))
    throw new InvalidOptionError(
      'select-by',
      `label "${criterion.label}" is not learnt (labels: ${dataset.labels.join(', ')})`,
    );
  const aux = dataset.auxLabels ?? [];
  if (!aux.includes(criterion.condition))
    throw new InvalidOptionError(
      'select-by',
      `recorded label "${criterion.condition}" was not read with the dataset (aux labels: ${aux.join(', ') || 'none'})`,
    );
  const column = aux.indexOf(criterion.condition);
  const carried = dataset.sequences.some((s) =>
    auxColumn(s, column, aux.length).some((v) => !Number.isNaN(v)),
  );
  if (!carried)
    throw new BraidError(
      'BRAID_ERR_DATASET',
      `--select-by: no recording carries the recorded label "${criterion.condition}", so there is nothing to rank`,
    );
}

/** Validation data must be read as the training data was, or its scores would mean something else. */
function checkValidationData(dataset: Dataset, validation: Dataset, folds: number): void {
  const fail = (what: string) => {
    throw new BraidError('BRAID_ERR_DATASET', `--validation-data: ${what}`);
  };
  if (folds !== 1)
    throw new InvalidOptionError(
      'folds',
      `must be 1 with validation data (it replaces the split), got ${folds}`,
    );
  if (validation.sequences.length === 0) fail('the recordings gave no windows');
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  if (!same(validation.labels, dataset.labels))
    fail(`labels ${validation.labels.join(', ')} differ from training's ${dataset.labels.join(', ')}`);
  if (!same(validation.auxLabels ?? [], dataset.auxLabels ?? []))
    fail('recorded labels differ from those read with the training recordings');
  if (!same(validation.featureConfig, dataset.featureConfig) || validation.inputWidth !== dataset.inputWidth)
    fail("the feature config differs from the training recordings'");
  if (!same(saveWindowing(validation.windowing), saveWindowing(dataset.windowing)))
    fail("the windowing differs from the training recordings'");
  const trained = new Set(dataset.sequences.map((s) => s.session));
  const both = [...new Set(validation.sequences.map((s) => s.session))].filter((s) => trained.has(s));
  if (both.length > 0) fail(`recording "${both[0]}" is also a training recording`);
  // By content too: a copy of a training recording under another name would validate on what was trained on.
  const digest = (x: Float32Array) =>
    `${x.length}:${createHash('sha256')
      .update(new Uint8Array(x.buffer, x.byteOffset, x.byteLength))
      .digest('hex')}`;
  const trainedDigests = new Map(dataset.sequences.map((s) => [digest(s.x), s.session]));
  for (const s of validation.sequences) {
    const twin = trainedDigests.get(digest(s.x));
    if (twin !== undefined)
      fail(`recording "${s.session}" holds the very windows of training recording "${twin}" (a copy of it?)`);
  }
}

function checkOptions(o: TrainOptions): void {
  const positiveInt = (name: string, v: number) => {
    if (!Number.isInteger(v) || v < 1)
      throw new InvalidOptionError(name, `must be a whole number >= 1, got ${v}`);
  };
  if (o.hiddenSizes.length === 0) throw new InvalidOptionError('hidden', 'needs at least one size');
  for (const h of o.hiddenSizes) positiveInt('hidden', h);
  if (new Set(o.hiddenSizes).size !== o.hiddenSizes.length)
    throw new InvalidOptionError('hidden', `sizes must be distinct, got ${o.hiddenSizes.join(',')}`);
  for (const [m, u] of Object.entries(o.encoderUnits)) positiveInt(`encoder.${m}`, u);
  for (const name of ['folds', 'chunk', 'batchSize', 'maxEpochs', 'patience', 'baselineBatchSize'] as const)
    positiveInt(name, o[name]);
  if (!Number.isInteger(o.baselineHidden) || o.baselineHidden < 0)
    throw new InvalidOptionError('baselineHidden', `must be a whole number >= 0, got ${o.baselineHidden}`);
  if (!(o.learningRate > 0 && Number.isFinite(o.learningRate)))
    throw new InvalidOptionError('lr', `must be a positive number, got ${o.learningRate}`);
  if (!(o.l2 >= 0 && Number.isFinite(o.l2)))
    throw new InvalidOptionError('l2', `must be a number >= 0, got ${o.l2}`);
  if (!(o.clipnorm > 0))
    throw new InvalidOptionError('clipnorm', `must be > 0 (or Infinity for none), got ${o.clipnorm}`);
  if (!Number.isInteger(o.seed)) throw new InvalidOptionError('seed', `must be an integer, got ${o.seed}`);
  for (const [label, w] of Object.entries(o.windowWeights))
    if (!(w > 0 && Number.isFinite(w)))
      throw new InvalidOptionError(
        'window-weight',
        `weight of "${label}" must be a positive number, got ${w}`,
      );
}

const bySession = (sequences: readonly Sequence[], sessions: readonly string[]): Sequence[] => {
  const keep = new Set(sessions);
  return sequences.filter((s) => keep.has(s.session));
};

const mean = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0) / values.length;

/** Epochs for a final run on all sessions: the mean of the folds' best epochs (at least 1). */
const finalEpochs = (folds: readonly FoldReport[]): number =>
  Math.max(1, Math.round(mean(folds.map((f) => f.bestEpoch))));

interface Runner<T> {
  /** Trains on `train`, early-stopping on `validation` (if any); returns validation logits and the fit. */
  run(
    info: RunInfo,
    train: readonly Sequence[],
    validation: readonly Sequence[],
    maxEpochs: number,
  ): RunOutput<T>;
}

interface RunOutput<T> {
  readonly fit: FitResult;
  readonly logits: Float32Array[];
  /** The trained weights as plain arrays; frees the tfjs variables. */
  take(): T;
  dispose(): void;
}

function fitWithProgress(
  info: RunInfo,
  learner: RecurrentLearner | BaselineLearner,
  options: TrainOptions,
  maxEpochs: number,
  progress: ProgressListener | undefined,
): FitResult {
  progress?.runStart?.(info);
  const result = trainLoop(learner, {
    maxEpochs,
    patience: options.patience,
    learningRate: options.learningRate,
    optimizer: options.optimizer,
    clipnorm: options.clipnorm,
    onEpoch: (record) => progress?.epoch?.(info, record),
  });
  progress?.runEnd?.(info, result);
  return result;
}

/**
 * Trains the recurrent model and the memoryless baseline on a dataset: cross-validation by session over the hidden
 * sizes (normalization computed on each fold's training sessions only), the size with the lowest mean validation
 * loss retrained on every session for the folds' mean best epoch count, and the same for the baseline. Every fold's
 * figures go into the report. Deterministic for a seed on the tfjs cpu backend.
 *
 * With `validationData` (Keras's validation_data beside validation_split), those recordings replace the split: one run
 * per size trains on every training session and early-stops on them, the size is chosen on them, and the chosen
 * run's weights at its best epoch are the model (no retrain, so the validated weights are the ones shipped). The
 * point is validation data unlike training's, e.g. distractor sounds training never heard, as the test's are.
 */
export function trainModel(
  dataset: Dataset,
  options: TrainOptions = DEFAULT_TRAIN_OPTIONS,
  progress?: ProgressListener,
  validationData?: Dataset,
): TrainingOutcome {
  checkOptions(options);
  if (validationData) checkValidationData(dataset, validationData, options.folds);
  checkSelection(
    options.selectBy,
    validationData ? { ...dataset, sequences: validationData.sequences } : dataset,
  );
  const t0 = performance.now();
  const trainSequences = applyWindowWeights(dataset, options.windowWeights);
  const sessions = [...new Set(dataset.sequences.map((s) => s.session))];
  const weighted = validationData ? [...trainSequences, ...validationData.sequences] : trainSequences;
  const splits: readonly SessionSplit[] = validationData
    ? [{ train: sessions, validation: [...new Set(validationData.sequences.map((s) => s.session))] }]
    : sessionSplits(sessions, options.folds, options.seed, options.valFraction);
  const { labels, featureConfig, inputWidth } = dataset;

  const recurrent = (hidden: number): Runner<Model> => ({
    run(info, train, validation, maxEpochs) {
      const config = buildModelConfig(
        featureConfig,
        labels,
        { cell: options.cell, hidden, encoderUnits: options.encoderUnits },
        computeNormalization(train, inputWidth),
        dataset.windowing,
      );
      const phase = info.phase === 'final' ? 99 : 0;
      const fold = info.fold ?? 99;
      const model = TrainableModel.initial(config, deriveSeed(options.seed, 1, hidden, fold, phase));
      const learner = new RecurrentLearner(model, train, validation, {
        chunk: options.chunk,
        batchSize: options.batchSize,
        seed: deriveSeed(options.seed, 2, hidden, fold, phase),
        l2: options.l2,
      });
      const result = fitWithProgress(info, learner, options, maxEpochs, progress);
      const logits = validation.length > 0 ? sequenceLogits(model.params, config, validation) : [];
      return {
        fit: result,
        logits,
        take: () => takeAndDispose(model, () => model.toModel()),
        dispose: () => model.dispose(),
      };
    },
  });
  const baselineRunner = (hidden: number): Runner<Baseline> => ({
    run(info, train, validation, maxEpochs) {
      const config: BaselineConfig = {
        kind: 'mlp',
        hidden,
        inputWidth,
        labels: [...labels],
        normalization: computeNormalization(train, inputWidth),
      };
      const fold = info.fold ?? 99;
      const model = new TrainableBaseline(initialBaseline(config, deriveSeed(options.seed, 3, hidden, fold)));
      const learner = new BaselineLearner(model, train, validation, {
        batchSize: options.baselineBatchSize,
        seed: deriveSeed(options.seed, 4, hidden, fold),
        l2: options.l2,
      });
      const result = fitWithProgress(info, learner, options, maxEpochs, progress);
      const logits = validation.length > 0 ? baselineLogits(model, validation) : [];
      return {
        fit: result,
        logits,
        take: () => takeAndDispose(model, () => model.toBaseline()),
        dispose: () => model.dispose(),
      };
    },
  });

  /** Validated runs' weights by hidden size, kept only with validation data (there they are the final model). */
  const validatedRuns = new Map<string, { fold: FoldReport; trained: unknown }>();
  const crossValidate = <T>(runner: Runner<T>, hidden: number, phase: 'cv' | 'baseline-cv'): SizeReport => {
    const folds: FoldReport[] = splits.map((split, fold) => {
      const train = bySession(weighted, split.train);
      const validation = bySession(weighted, split.validation);
      const info: RunInfo = { phase, fold, folds: splits.length, hidden, maxEpochs: options.maxEpochs };
      const out = runner.run(info, train, validation, options.maxEpochs);
      let kept = false;
      try {
        const scored = validation.map((s, i) => ({
          scores: sigmoid(out.logits[i] as Float32Array),
          targets: s.y,
        }));
        const metrics = labelMetrics(scored, labels);
        const operating = validationOperatingPoints(validation, scored, labels, dataset.auxLabels ?? []);
        const report: FoldReport = {
          fold,
          hidden,
          trainSessions: split.train,
          validationSessions: split.validation,
          trainWindows: windowCount(train),
          validationWindows: windowCount(validation),
          bestEpoch: out.fit.bestEpoch,
          bestValLoss: out.fit.bestValLoss ?? Number.POSITIVE_INFINITY,
          stopReason: out.fit.stopReason,
          validationF1: macroF1(metrics),
          validation: metrics,
          ...(operating && { validationOperating: operating }),
          history: out.fit.history,
        };
        if (validationData) {
          validatedRuns.set(`${phase}:${hidden}`, { fold: report, trained: out.take() });
          kept = true;
        }
        return report;
      } finally {
        if (!kept) out.dispose();
      }
    });
    return {
      hidden,
      meanValLoss: mean(folds.map((f) => f.bestValLoss)),
      meanValF1: mean(folds.map((f) => f.validationF1)),
      meanBestEpoch: mean(folds.map((f) => f.bestEpoch)),
      folds,
    };
  };

  const sizes = options.hiddenSizes.map((h) => crossValidate(recurrent(h), h, 'cv'));
  const usable = sizes.filter((s) => Number.isFinite(s.meanValLoss) && s.folds.every((f) => f.bestEpoch > 0));
  if (usable.length === 0)
    throw new BraidError(
      'BRAID_ERR_MODEL',
      `training diverged for every hidden size (${sizes.map((s) => `${s.hidden}: ${s.folds.map((f) => f.stopReason).join('/')}`).join('; ')}); lower --lr or set --clipnorm`,
    );
  const chosen = chooseSize(usable, options.selectBy);
  const all = trainSequences;
  const finalModel = trainFinal(recurrent(chosen.hidden), chosen, all, 'final');
  const baselineSize = crossValidate(
    baselineRunner(options.baselineHidden),
    options.baselineHidden,
    'baseline-cv',
  );
  const finalBaseline = trainFinal(
    baselineRunner(options.baselineHidden),
    baselineSize,
    all,
    'baseline-final',
  );

  const threshold = finalModel.report.validated
    ? validatedThreshold(options.selectBy, chosen.folds[0] as FoldReport)
    : null;
  const report: TrainingReport = {
    format: 'braid-training-report',
    version: 1,
    createdAt: new Date().toISOString(),
    labels,
    windowing: saveWindowing(dataset.windowing),
    options,
    dataset: { sessions: dataset.sessions, sequences: all.length, windows: windowCount(all) },
    ...(validationData && {
      validationData: {
        sessions: validationData.sessions,
        sequences: validationData.sequences.length,
        windows: windowCount(validationData.sequences),
      },
    }),
    selection: { criterion: describeSelection(options.selectBy), sizes, chosenHidden: chosen.hidden },
    final: finalModel.report,
    ...(threshold && { validatedThreshold: threshold }),
    baseline: { size: baselineSize, final: finalBaseline.report },
    seconds: (performance.now() - t0) / 1000,
  };
  return { model: finalModel.trained, baseline: finalBaseline.trained, report };

  function trainFinal<T>(
    runner: Runner<T>,
    size: SizeReport,
    sequences: readonly Sequence[],
    phase: 'final' | 'baseline-final',
  ): { report: FinalRunReport; trained: T } {
    const validated = validatedRuns.get(`${phase === 'final' ? 'cv' : 'baseline-cv'}:${size.hidden}`);
    if (validated)
      return {
        report: {
          hidden: size.hidden,
          epochs: validated.fold.bestEpoch,
          validated: true,
          trainSessions: sessions.length,
          trainWindows: windowCount(sequences),
          history: validated.fold.history,
        },
        trained: validated.trained as T,
      };
    const epochs = finalEpochs(size.folds);
    const info: RunInfo = { phase, folds: splits.length, hidden: size.hidden, maxEpochs: epochs };
    const out = runner.run(info, sequences, [], epochs);
    if (out.fit.stopReason === 'diverged') {
      out.dispose();
      throw new BraidError(
        'BRAID_ERR_MODEL',
        `the final ${phase === 'final' ? 'model' : 'baseline'} run diverged at epoch ${out.fit.history.length} (non-finite loss or gradient); lower --lr or set --clipnorm`,
      );
    }
    return {
      report: {
        hidden: size.hidden,
        epochs,
        trainSessions: sessions.length,
        trainWindows: windowCount(sequences),
        history: out.fit.history,
      },
      trained: out.take(),
    };
  }
}

function takeAndDispose<T>(owner: { dispose(): void }, read: () => T): T {
  try {
    return read();
  } finally {
    owner.dispose();
  }
}
