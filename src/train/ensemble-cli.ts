import { existsSync } from 'node:fs';
import { cp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { modelWindowing } from '../align/windowing.js';
import { InvalidOptionError } from '../core/errors.js';
import { EVENTS_JSON } from '../events/model-events.js';
import type { EventsFile } from '../events/settings.js';
import { parseFeatureConfig } from '../features/config.js';
import { ensembleModels } from '../model/ensemble.js';
import { loadModel, MODEL_JSON, modelId, saveModel } from '../model/model-io.js';
import { BASELINE_DIR } from './baseline.js';
import { expandRecordings } from './cli.js';
import { buildDataset } from './dataset.js';
import { type RecallThreshold, thresholdForRecall } from './recall-threshold.js';

export const ENSEMBLE_REPORT = 'ensemble.json';

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
    .action(async (dirs: string[], flags: EnsembleFlags) => {
      if (dirs.length < 2)
        throw new InvalidOptionError('models', `needs at least 2 model directories, got ${dirs.length}`);
      if (existsSync(path.join(flags.out, MODEL_JSON)) && !flags.force)
        throw new InvalidOptionError(
          'out',
          `"${flags.out}" already holds a model; pass --force to overwrite it`,
        );
      const thresholdAt = flags.thresholdAt === undefined ? undefined : parseThresholdAt(flags.thresholdAt);
      if ((thresholdAt === undefined) !== (flags.validationData === undefined))
        throw new InvalidOptionError(
          thresholdAt ? 'validation-data' : 'threshold-at',
          'goes with the other: --threshold-at is chosen on the --validation-data recordings',
        );
      const validationFiles = flags.validationData && (await expandRecordings(flags.validationData));
      const members = await Promise.all(dirs.map((dir) => loadModel(dir)));
      const merged = ensembleModels(members);
      if (thresholdAt && !merged.config.labels.includes(thresholdAt.label))
        throw new InvalidOptionError(
          'threshold-at',
          `"${thresholdAt.label}" is not a label of the models (${merged.config.labels.join(', ')})`,
        );
      let validated: EnsembleReport['validatedThreshold'];
      if (thresholdAt && validationFiles) {
        process.stderr.write(`braid ensemble: reading ${validationFiles.length} validation recordings...\n`);
        const dataset = await buildDataset(validationFiles, {
          featureConfig: parseFeatureConfig(merged.config.featureConfig, 'model.featureConfig'),
          windowing: modelWindowing(merged.config.windowing).windowing,
          labels: merged.config.labels,
        });
        const t = thresholdForRecall(merged, dataset, thresholdAt.label, thresholdAt.recall);
        validated = { ...t, validationSessions: dataset.sessions.length };
      }
      await saveModel(merged, flags.out);
      // Members' events.json files were set for their own scores, so none is copied; one already in --out is kept
      // and named, as braid train keeps it (it may be the user's own).
      const eventsFile = path.join(flags.out, EVENTS_JSON);
      const keptEvents = !validated && existsSync(eventsFile);
      if (validated) {
        const events: EventsFile = { labels: { [validated.label]: { on: validated.on, off: validated.on } } };
        await writeFile(eventsFile, `${JSON.stringify(events, null, 2)}\n`);
      }
      const baselineFrom = dirs.find((dir) => existsSync(path.join(dir, BASELINE_DIR))) ?? null;
      if (baselineFrom !== null)
        await cp(path.join(baselineFrom, BASELINE_DIR), path.join(flags.out, BASELINE_DIR), {
          recursive: true,
        });
      const report: EnsembleReport = {
        format: 'braid-ensemble',
        combination: 'mean-logit',
        members: await Promise.all(
          dirs.map(async (dir, i) => ({
            dir,
            modelId: await modelId(dir),
            hidden: members[i]?.config.hidden ?? 0,
          })),
        ),
        baselineFrom,
        ...(validated && { validatedThreshold: validated }),
      };
      await writeFile(path.join(flags.out, ENSEMBLE_REPORT), `${JSON.stringify(report, null, 2)}\n`);
      process.stdout.write(
        `braid ensemble: ${dirs.length} models (hidden ${members.map((m) => m.config.hidden).join(' + ')} = ${merged.config.hidden}) written to ${flags.out} as one, logits averaged${baselineFrom ? `; baseline from ${baselineFrom}` : ''}\n${
          validated
            ? `braid ensemble: ${eventsFile}: ${validated.label} on at scores >= ${validated.on.toFixed(4)}, where it finds ${validated.recall.toFixed(3)} of its ${validated.positives} windows in ${validated.validationSessions} validation recordings\n`
            : keptEvents
              ? `braid ensemble: kept ${eventsFile} from before; its thresholds were set for another model's scores\n`
              : ''
        }`,
      );
    });
}
