import { existsSync } from 'node:fs';
import { cp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { modelWindowing } from '../align/windowing.js';
import { InvalidOptionError } from '../core/errors.js';
import { EVENTS_JSON } from '../events/model-events.js';
import { parseFeatureConfig } from '../features/config.js';
import { ensembleModels } from '../model/ensemble.js';
import { loadModel, MODEL_JSON, modelId, saveModel } from '../model/model-io.js';
import type { Model } from '../model/weights.js';
import { BASELINE_DIR } from './baseline.js';
import { expandRecordings } from './cli.js';
import { buildDataset } from './dataset.js';
import { TRAINING_REPORT } from './evaluate.js';
import { type RecallThreshold, thresholdForRecall } from './recall-threshold.js';
import { validatedEvents } from './validated-threshold.js';

export const ENSEMBLE_REPORT = 'ensemble.json';
/** braid import's report (src/interop/import-model.ts IMPORT_REPORT; interop reads train, so not imported from it). */
const IMPORTED_REPORT = 'import-report.json';

/** What `braid ensemble` records beside the merged model: which models it averages, and how. */
export interface EnsembleReport {
  readonly format: 'braid-ensemble';
  readonly combination: 'mean-logit';
  readonly members: readonly { readonly dir: string; readonly modelId: string; readonly hidden: number }[];
  /** The member whose memoryless baseline was copied (braid eval scores the model beside it); null when none had one. */
  readonly baselineFrom: string | null;
  /** With --threshold-at: the threshold written to events.json, and the validation recordings it was chosen on. */
  readonly validatedThreshold?: RecallThreshold & { readonly validationSessions: number };
}

/** `--threshold-at speech=0.95`: the label and the recall share. */
function parseThresholdAt(text: string): { label: string; recall: number } {
  const [label, value, ...rest] = text.split('=');
  const recall = Number(value);
  if (!label || rest.length > 0 || !(recall > 0 && recall <= 1))
    throw new InvalidOptionError(
      'threshold-at',
      `must be LABEL=RECALL with a recall in (0, 1], e.g. speech=0.95; got "${text}"`,
    );
  return { label, recall };
}

interface EnsembleFlags {
  readonly out: string;
  readonly force?: boolean;
  readonly validationData?: string[];
  readonly thresholdAt?: string;
}

/** `braid ensemble <models...> --out DIR`. */
export function registerEnsembleCommand(program: Command): Command {
  return program
    .command('ensemble')
    .description(
      'Merge trained models of the same features, windowing and labels into one whose logits are the mean of theirs (e.g. seeds of one braid train command): one model directory that serves and evaluates as any other',
    )
    .argument('<models...>', 'model directories written by braid train (at least 2)')
    .requiredOption(
      '--out <dir>',
      'model directory to write (model.json, weights.bin, ensemble.json, baseline/)',
    )
    .option('--validation-data <recordings...>', 'recordings (or directories) to choose --threshold-at on')
    .option(
      '--threshold-at <label=recall>',
      'write events.json: LABEL turns on at the highest score where it finds at least RECALL of its --validation-data windows, e.g. speech=0.95',
    )
    .option('--force', 'overwrite an existing model directory')
    .action((dirs: string[], flags: EnsembleFlags) => writeEnsemble(dirs, flags));
}

/** The option errors, before anything slow: two distinct members, --out none of them, the validation options paired. */
function checkFlags(dirs: readonly string[], flags: EnsembleFlags): void {
  if (dirs.length < 2)
    throw new InvalidOptionError('models', `needs at least 2 model directories, got ${dirs.length}`);
  const resolved = dirs.map((d) => path.resolve(d));
  const twice = dirs.find((_, i) => resolved.indexOf(resolved[i] as string) !== i);
  if (twice !== undefined)
    throw new InvalidOptionError(
      'models',
      `"${twice}" is named twice; the same model twice only doubles the width`,
    );
  if (resolved.includes(path.resolve(flags.out)))
    throw new InvalidOptionError(
      'out',
      `"${flags.out}" is one of the members; write the ensemble to another directory`,
    );
  if (existsSync(path.join(flags.out, MODEL_JSON)) && !flags.force)
    throw new InvalidOptionError('out', `"${flags.out}" already holds a model; pass --force to overwrite it`);
  if (flags.thresholdAt !== undefined && flags.validationData === undefined)
    throw new InvalidOptionError(
      'validation-data',
      'is needed by --threshold-at: the recordings its threshold is chosen on',
    );
  if (flags.validationData !== undefined && flags.thresholdAt === undefined)
    throw new InvalidOptionError(
      'threshold-at',
      'is what --validation-data is read for; name the label and recall, e.g. speech=0.95',
    );
}

/** The threshold-at threshold of the merged model on the validation recordings. */
async function validateThreshold(
  merged: Model,
  inputs: readonly string[],
  target: { label: string; recall: number },
): Promise<NonNullable<EnsembleReport['validatedThreshold']>> {
  if (!merged.config.labels.includes(target.label))
    throw new InvalidOptionError(
      'threshold-at',
      `"${target.label}" is not a label of the models (${merged.config.labels.join(', ')})`,
    );
  const files = await expandRecordings(inputs);
  process.stderr.write(`braid ensemble: reading ${files.length} validation recordings...\n`);
  const dataset = await buildDataset(files, {
    featureConfig: parseFeatureConfig(merged.config.featureConfig, 'model.featureConfig'),
    windowing: modelWindowing(merged.config.windowing).windowing,
    labels: merged.config.labels,
  });
  const t = thresholdForRecall(merged, dataset, target.label, target.recall);
  return { ...t, validationSessions: dataset.sessions.length };
}

async function writeEnsemble(dirs: readonly string[], flags: EnsembleFlags): Promise<void> {
  checkFlags(dirs, flags);
  const thresholdAt = flags.thresholdAt === undefined ? undefined : parseThresholdAt(flags.thresholdAt);
  const members = await Promise.all(dirs.map((dir) => loadModel(dir)));
  const ids = await Promise.all(dirs.map((dir) => modelId(dir)));
  const merged = ensembleModels(members);
  const validated =
    thresholdAt && flags.validationData
      ? await validateThreshold(merged, flags.validationData, thresholdAt)
      : undefined;
  const out = flags.out;
  await saveModel(merged, out);
  // What braid train or import left with a model this one replaces describes that model (eval would read its baseline).
  for (const name of [BASELINE_DIR, TRAINING_REPORT, IMPORTED_REPORT])
    await rm(path.join(out, name), { recursive: true, force: true });
  const baselineFrom = dirs.find((dir) => existsSync(path.join(dir, BASELINE_DIR))) ?? null;
  if (baselineFrom !== null)
    await cp(path.join(baselineFrom, BASELINE_DIR), path.join(out, BASELINE_DIR), { recursive: true });
  // Members' events.json files were set for their own scores, so none is copied; one already in --out is kept and
  // named, as braid train keeps it (it may be the user's own).
  const eventsFile = path.join(out, EVENTS_JSON);
  const lines = [
    `braid ensemble: ${dirs.length} models (hidden ${members.map((m) => m.config.hidden).join(' + ')} = ${merged.config.hidden}) written to ${out} as one, logits averaged${baselineFrom ? `; baseline from ${baselineFrom}` : ''}`,
  ];
  if (validated) {
    await writeFile(eventsFile, `${JSON.stringify(validatedEvents(validated), null, 2)}\n`);
    lines.push(
      `braid ensemble: ${eventsFile}: ${validated.label} on at scores >= ${validated.on.toFixed(4)}, where it finds ${validated.recall.toFixed(3)} of its ${validated.positives} windows in ${validated.validationSessions} validation recordings`,
    );
  } else if (existsSync(eventsFile))
    lines.push(
      `braid ensemble: kept ${eventsFile} from before; its thresholds were set for another model's scores`,
    );
  else if (dirs.some((dir) => existsSync(path.join(dir, EVENTS_JSON))))
    lines.push(
      "braid ensemble: the members' events.json thresholds were set for their own scores and are not copied; the default thresholds apply (choose one with --validation-data and --threshold-at)",
    );
  const report: EnsembleReport = {
    format: 'braid-ensemble',
    combination: 'mean-logit',
    members: dirs.map((dir, i) => ({
      dir,
      modelId: ids[i] as string,
      hidden: (members[i] as Model).config.hidden,
    })),
    baselineFrom,
    ...(validated && { validatedThreshold: validated }),
  };
  await writeFile(path.join(out, ENSEMBLE_REPORT), `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`${lines.join('\n')}\n`);
}
