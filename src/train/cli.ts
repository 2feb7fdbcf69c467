import { existsSync, statSync } from 'node:fs';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { BraidError, InvalidOptionError } from '../core/errors.js';
import { parseDuration } from '../core/time.js';
import { EVENTS_JSON } from '../events/model-events.js';
import { type PartialEventSettings, parseEventsOption } from '../events/settings.js';
import { readFeatureConfigFile } from '../features/config-file.js';
import { MODEL_JSON, saveModel } from '../model/model-io.js';
import { saveBaseline } from './baseline.js';
import { buildDataset, type Dataset } from './dataset.js';
import {
  DEFAULT_FPR_LABEL,
  DEFAULT_ONSET_TOLERANCE,
  EVENT_THRESHOLDS,
  evaluateModel,
  formatEvaluation,
  TRAINING_REPORT,
} from './evaluate.js';
import { DEFAULT_OPERATING_TARGETS } from './operating-points.js';
import { createProgress } from './progress.js';
import { meanFoldRecallAtFpr, parseSelectionCriterion, selectionConditions } from './selection.js';
import { type TrainingBackend, useTrainingBackend } from './tf-setup.js';
import {
  DEFAULT_TRAIN_OPTIONS,
  type SizeReport,
  type TrainingReport,
  type TrainOptions,
  trainModel,
} from './train.js';
import { type ValidatedThreshold, validatedEvents } from './validated-threshold.js';
import { parseWindowWeights } from './window-weights.js';

/** Files as given; directories contribute their `*.mcap` files, sorted. */
export async function expandRecordings(inputs: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const input of inputs) {
    let info: Awaited<ReturnType<typeof stat>>;
    try {
      info = await stat(input);
    } catch {
      throw new BraidError('BRAID_ERR_DATASET', `recording "${input}" does not exist`);
    }
    if (!info.isDirectory()) {
      out.push(input);
      continue;
    }
    const names = (await readdir(input)).filter((n) => n.endsWith('.mcap')).sort();
    if (names.length === 0)
      throw new BraidError('BRAID_ERR_DATASET', `directory "${input}" holds no .mcap recordings`);
    out.push(...names.map((n) => path.join(input, n)));
  }
  return out;
}

function integer(option: string, text: string, min: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min)
    throw new InvalidOptionError(option, `must be a whole number >= ${min}, got "${text}"`);
  return n;
}

function positiveNumber(option: string, text: string): number {
  const n = Number(text);
  if (!(Number.isFinite(n) && n > 0))
    throw new InvalidOptionError(option, `must be a positive number, got "${text}"`);
  return n;
}

function nonNegative(option: string, text: string): number {
  const n = Number(text);
  if (!(Number.isFinite(n) && n >= 0))
    throw new InvalidOptionError(option, `must be a number >= 0, got "${text}"`);
  return n;
}

const list = (option: string, text: string): number[] =>
  text.split(',').map((t) => integer(option, t.trim(), 1));

interface TrainFlags {
  out: string;
  labels?: string;
  features?: string;
  cell: string;
  hidden: string;
  encoder: string;
  folds: string;
  valFraction: string;
  chunk: string;
  batch: string;
  epochs: string;
  patience: string;
  lr: string;
  optimizer: string;
  clipnorm: string;
  l2: string;
  seed: string;
  baselineHidden: string;
  windowWeight?: string;
  selectBy?: string;
  validationData?: string[];
  backend: string;
  force?: boolean;
}

/** A flag's text through its parser, or the default when it was not given; the parser's error names the flag. */
function parsedFlag<T>(flag: string, text: string | undefined, parse: (text: string) => T, fallback: T): T {
  if (text === undefined) return fallback;
  try {
    return parse(text);
  } catch (error) {
    throw new InvalidOptionError(flag, (error as Error).message);
  }
}

/** Command-line flags to checked training options; each error names its flag. */
export function parseTrainFlags(flags: TrainFlags): TrainOptions {
  if (flags.cell !== 'gru' && flags.cell !== 'lstm')
    throw new InvalidOptionError('cell', `must be gru or lstm, got "${flags.cell}"`);
  if (flags.optimizer !== 'adam' && flags.optimizer !== 'sgd')
    throw new InvalidOptionError('optimizer', `must be adam or sgd, got "${flags.optimizer}"`);
  const encoder = list('encoder', flags.encoder);
  if (encoder.length !== 1 && encoder.length !== 3)
    throw new InvalidOptionError(
      'encoder',
      `must be one size or three (audio,video,text), got "${flags.encoder}"`,
    );
  const [a, v = a, t = a] = encoder as [number, number?, number?];
  const valFraction = Number(flags.valFraction);
  if (!(valFraction > 0 && valFraction < 1))
    throw new InvalidOptionError('val-fraction', `must be between 0 and 1, got "${flags.valFraction}"`);
  const clipnorm =
    flags.clipnorm === 'none' ? Number.POSITIVE_INFINITY : positiveNumber('clipnorm', flags.clipnorm);
  return {
    cell: flags.cell,
    hiddenSizes: list('hidden', flags.hidden),
    encoderUnits: { audio: a, video: v as number, text: t as number },
    folds: integer('folds', flags.folds, 1),
    valFraction,
    chunk: integer('chunk', flags.chunk, 1),
    batchSize: integer('batch', flags.batch, 1),
    maxEpochs: integer('epochs', flags.epochs, 1),
    patience: integer('patience', flags.patience, 1),
    learningRate: positiveNumber('lr', flags.lr),
    optimizer: flags.optimizer,
    clipnorm,
    l2: nonNegative('l2', flags.l2),
    seed: integer('seed', flags.seed, 0),
    baselineHidden: integer('baseline-hidden', flags.baselineHidden, 0),
    baselineBatchSize: DEFAULT_TRAIN_OPTIONS.baselineBatchSize,
    windowWeights: parsedFlag(
      'window-weight',
      flags.windowWeight,
      parseWindowWeights,
      DEFAULT_TRAIN_OPTIONS.windowWeights,
    ),
    selectBy: parsedFlag(
      'select-by',
      flags.selectBy,
      parseSelectionCriterion,
      DEFAULT_TRAIN_OPTIONS.selectBy,
    ),
  };
}

/**
 * A size's mean validation recall at 5 % false positives on each recorded label, for the learnt labels that have one:
 * "distractor: speech 0.951, motion 0.930".
 */
export function operatingSummary(size: SizeReport): string[] {
  const recorded = Object.keys(size.folds[0]?.validationOperating ?? {});
  return recorded.flatMap((name) => {
    const perLabel = Object.keys(size.folds[0]?.validationOperating?.[name] ?? {}).flatMap((label) => {
      const mean = meanFoldRecallAtFpr(size, name, label);
      return mean === null ? [] : [`${label} ${mean.toFixed(3)}`];
    });
    return perLabel.length > 0
      ? [
          `      val recall at ${DEFAULT_OPERATING_TARGETS.fpr * 100} % FPR on ${name}: ${perLabel.join(', ')}`,
        ]
      : [];
  });
}

function summary(report: TrainingReport): string {
  const lines = report.selection.sizes.flatMap((s) => [
    `  hidden ${String(s.hidden).padStart(4)}: mean val loss ${s.meanValLoss.toFixed(4)}, mean val F1 ${s.meanValF1.toFixed(3)}, mean best epoch ${s.meanBestEpoch.toFixed(1)}${s.hidden === report.selection.chosenHidden ? '  <- chosen' : ''}`,
    ...operatingSummary(s),
  ]);
  const b = report.baseline.size;
  const weights = Object.entries(report.options.windowWeights).map(([l, w]) => `${l}=${w}`);
  return [
    `braid train: ${report.dataset.windows} windows, ${report.dataset.sessions.length} recordings, labels ${report.labels.join(', ')}${weights.length > 0 ? `, window weights ${weights.join(',')}` : ''}`,
    `  hidden size by ${report.selection.criterion}`,
    ...lines,
    `  baseline (memoryless MLP, ${b.hidden} hidden): mean val loss ${b.meanValLoss.toFixed(4)}, mean val F1 ${b.meanValF1.toFixed(3)}`,
    report.final.validated
      ? `  final: hidden ${report.final.hidden}, the validated run at epoch ${report.final.epochs} (trained on all ${report.final.trainSessions} recordings, validated on ${report.validationData?.sessions.length ?? 0}); ${report.seconds.toFixed(0)} s in all`
      : `  final: hidden ${report.final.hidden}, ${report.final.epochs} epochs on all ${report.final.trainSessions} recordings; ${report.seconds.toFixed(0)} s in all`,
  ].join('\n');
}

/**
 * events.json from the validated threshold, if training validated one; the line saying so. Without one, an events.json
 * left by an earlier model in the directory is kept (it may be the user's own) but named, since its thresholds were
 * set for other scores.
 */
async function writeValidatedEvents(dir: string, threshold: ValidatedThreshold | undefined): Promise<string> {
  const file = path.join(dir, EVENTS_JSON);
  if (!threshold)
    return existsSync(file)
      ? `braid train: kept ${file} from before; its thresholds were set for another model's scores\n`
      : '';
  await writeFile(file, `${JSON.stringify(validatedEvents(threshold), null, 2)}\n`);
  return `braid train: ${file}: ${threshold.label} on at scores >= ${threshold.on.toFixed(4)}, where validation recall was ${threshold.recall.toFixed(3)} at ${threshold.fpr * 100} % false positives on ${threshold.condition}\n`;
}

/** --validation-data's recordings, read with the training data's labels, recorded labels, features and windowing. */
async function readValidationData(inputs: readonly string[], training: Dataset): Promise<Dataset> {
  if (inputs.length === 0) throw new InvalidOptionError('validation-data', 'names no recordings');
  const files = await expandRecordings(inputs);
  process.stderr.write(`braid train: reading ${files.length} validation recordings...\n`);
  return buildDataset(files, {
    labels: training.labels,
    featureConfig: training.featureConfig,
    windowing: training.windowing,
    ...(training.auxLabels && training.auxLabels.length > 0 && { auxLabels: training.auxLabels }),
  });
}

/** `braid train <recordings...> --out models/NAME`. */
export function registerTrainCommand(program: Command): Command {
  const d = DEFAULT_TRAIN_OPTIONS;
  return program
    .command('train')
    .description(
      "Train the recurrent model on labelled recordings (files or directories of .mcap), with the live pipeline's windows and features",
    )
    .argument('<recordings...>', 'MCAP recordings with a label channel, or directories of them')
    .requiredOption(
      '--out <dir>',
      'model directory to write (model.json, weights.bin, baseline/, training-report.json)',
    )
    .option('--labels <names>', 'labels to learn, comma-separated (default: every label found)')
    .option('--features <file>', 'feature config JSON (default: the live default, DEFAULT_FEATURE_CONFIG)')
    .option('--cell <type>', 'recurrent cell: gru or lstm', d.cell)
    .option(
      '--hidden <sizes>',
      'hidden sizes to compare by cross-validation, e.g. 32,64,128',
      d.hiddenSizes.join(','),
    )
    .option('--encoder <units>', 'encoder units: one size or audio,video,text', '32,32,16')
    .option('--folds <k>', 'k-fold cross-validation by recording (1: one hold-out split)', String(d.folds))
    .option(
      '--val-fraction <f>',
      'recordings held out for validation when --folds is 1',
      String(d.valFraction),
    )
    .option('--chunk <windows>', 'truncated back-propagation length in windows', String(d.chunk))
    .option('--batch <n>', 'sequences per minibatch', String(d.batchSize))
    .option('--epochs <n>', 'most epochs per run', String(d.maxEpochs))
    .option('--patience <n>', 'epochs without validation improvement before stopping', String(d.patience))
    .option('--lr <rate>', 'learning rate', String(d.learningRate))
    .option('--optimizer <name>', 'adam or sgd', d.optimizer)
    .option('--clipnorm <norm>', 'global gradient norm clip, or "none"', String(d.clipnorm))
    .option('--l2 <lambda>', 'L2 penalty on kernels (weight decay)', String(d.l2))
    .option('--seed <n>', 'seed for initial weights, folds and shuffling', String(d.seed))
    .option(
      '--baseline-hidden <n>',
      'hidden units of the memoryless baseline (0: logistic regression)',
      String(d.baselineHidden),
    )
    .option(
      '--window-weight <label=weight,...>',
      'windows where a recorded label the model does not learn is on weigh this much in the training loss, e.g. distractor=3 (validation stays unweighted)',
    )
    .option(
      '--select-by <criterion>',
      'how the hidden size is chosen: loss (lowest mean validation loss) or recall-at-fpr:LABEL:CONDITION (highest mean validation recall of LABEL at 5 % false positives where recorded label CONDITION is on), e.g. recall-at-fpr:speech:distractor',
      'loss',
    )
    .option(
      '--validation-data <recordings...>',
      'recordings (or directories) to validate on instead of splitting the training ones: early stopping and the choice of size use them, and the chosen run is the model (needs --folds 1)',
    )
    .option('--force', 'overwrite an existing model directory')
    .action(async (inputs: string[], flags: TrainFlags) => {
      const options = parseTrainFlags(flags);
      if (existsSync(flags.out) && !statSync(flags.out).isDirectory())
        throw new InvalidOptionError('out', `"${flags.out}" is a file, not a model directory`);
      if (existsSync(path.join(flags.out, MODEL_JSON)) && !flags.force)
        throw new InvalidOptionError(
          'out',
          `"${flags.out}" already holds a model; pass --force to overwrite it`,
        );
      await useTrainingBackend();
      const files = await expandRecordings(inputs);
      const labels = flags.labels?.split(',').map((l) => l.trim());
      process.stderr.write(`braid train: reading ${files.length} recordings...\n`);
      const featureConfig = flags.features ? await readFeatureConfigFile(flags.features) : undefined;
      const auxLabels = [
        ...new Set([...Object.keys(options.windowWeights), ...selectionConditions(options.selectBy)]),
      ];
      const dataset = await buildDataset(files, {
        ...(labels && { labels }),
        ...(featureConfig && { featureConfig }),
        ...(auxLabels.length > 0 && { auxLabels }),
      });
      const validation = flags.validationData && (await readValidationData(flags.validationData, dataset));
      const progress = createProgress();
      let outcome: ReturnType<typeof trainModel>;
      try {
        outcome = trainModel(dataset, options, progress, validation);
      } finally {
        progress.stop();
      }
      // model.json last: it is what marks the directory as holding a model (the check above, every loader), so a
      // save cut short (a full disk) leaves a directory that is not taken for a model and does not block the retry.
      await mkdir(flags.out, { recursive: true });
      await saveBaseline(outcome.baseline, flags.out);
      await writeFile(path.join(flags.out, TRAINING_REPORT), `${JSON.stringify(outcome.report, null, 2)}\n`);
      const events = await writeValidatedEvents(flags.out, outcome.report.validatedThreshold);
      await saveModel(outcome.model, flags.out);
      process.stdout.write(
        `${summary(outcome.report)}\n${events}braid train: model written to ${flags.out}\n`,
      );
    });
}

/** `braid eval <model> <recordings...>`. */
export function registerEvalCommand(program: Command): Command {
  return program
    .command('eval')
    .description(
      'Score a trained model and its memoryless baseline on labelled recordings: per-label precision, recall, F1, ROC AUC',
    )
    .argument('<model>', 'model directory written by braid train')
    .argument('<recordings...>', 'MCAP recordings with a label channel, or directories of them')
    .option(
      '--threshold <p>',
      `score at or above which a label counts as on, or "${EVENT_THRESHOLDS}": each label's on score from the model's events.json and --events (where braid train --validation-data put the validated one)`,
      '0.5',
    )
    .option('--json <file>', 'also write the figures as JSON')
    .option('--backend <name>', 'tfjs backend to run on: wasm or cpu', 'wasm')
    .option(
      '--events <label:settings>',
      "event thresholds of a label, over the model's events.json: LABEL:on=0.7,off=0.3,min-on=300ms,min-off=500ms (repeatable)",
      (value: string, previous: Record<string, PartialEventSettings> = {}) =>
        parseEventsOption(value, previous),
    )
    .option(
      '--onset-tolerance <duration>',
      'an on event this close to a true onset (either side) finds it',
      (value: string) => {
        try {
          return parseDuration(value);
        } catch (error) {
          throw new InvalidOptionError('onset-tolerance', (error as Error).message);
        }
      },
      DEFAULT_ONSET_TOLERANCE,
    )
    .option(
      '--fpr-on <labels>',
      `recorded labels the model does not predict (comma-separated, or "none"): each label's false-positive rate on the windows where one is on (default: ${DEFAULT_FPR_LABEL}, where the recordings carry it)`,
    )
    .option(
      '--at-fpr <share>',
      "operating point: each label's recall at the threshold where at most this share of the --fpr-on windows fire",
      String(DEFAULT_OPERATING_TARGETS.fpr),
    )
    .option(
      '--at-recall <share>',
      "operating point: each label's false-positive rate on the --fpr-on windows at the threshold where it reaches this recall",
      String(DEFAULT_OPERATING_TARGETS.recall),
    )
    .action(
      async (
        modelDir: string,
        inputs: string[],
        flags: {
          atFpr: string;
          atRecall: string;
          threshold: string;
          json?: string;
          backend: string;
          events?: Record<string, PartialEventSettings>;
          onsetTolerance: number;
          fprOn?: string;
        },
      ) => {
        const threshold = flags.threshold === EVENT_THRESHOLDS ? EVENT_THRESHOLDS : Number(flags.threshold);
        if (threshold !== EVENT_THRESHOLDS && !(threshold > 0 && threshold < 1))
          throw new InvalidOptionError(
            'threshold',
            `must be between 0 and 1 or "${EVENT_THRESHOLDS}", got "${flags.threshold}"`,
          );
        const share = (name: string, value: string): number => {
          const v = Number(value);
          if (!(v >= 0 && v <= 1))
            throw new InvalidOptionError(name, `must be a share from 0 to 1, got "${value}"`);
          return v;
        };
        const targets = { fpr: share('at-fpr', flags.atFpr), recall: share('at-recall', flags.atRecall) };
        await useTrainingBackend(flags.backend as TrainingBackend);
        const files = await expandRecordings(inputs);
        const fprOn =
          flags.fprOn === undefined
            ? undefined
            : flags.fprOn === 'none'
              ? []
              : flags.fprOn.split(',').map((l) => l.trim());
        if (fprOn?.some((l) => l.length === 0))
          throw new InvalidOptionError(
            'fpr-on',
            `must be label names separated by commas, got "${flags.fprOn}"`,
          );
        const report = await evaluateModel(
          modelDir,
          files,
          threshold,
          { overrides: flags.events, tolerance: flags.onsetTolerance },
          fprOn,
          targets,
        );
        if (flags.json) await writeFile(flags.json, `${JSON.stringify(report, null, 2)}\n`);
        process.stdout.write(`${formatEvaluation(report)}\n`);
      },
    );
}
