import { existsSync } from 'node:fs';
import { cp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { InvalidOptionError } from '../core/errors.js';
import { ensembleModels } from '../model/ensemble.js';
import { loadModel, MODEL_JSON, modelId, saveModel } from '../model/model-io.js';
import { BASELINE_DIR } from './baseline.js';

export const ENSEMBLE_REPORT = 'ensemble.json';

/** What `braid ensemble` records beside the merged model: which models it averages, and how. */
export interface EnsembleReport {
  readonly format: 'braid-ensemble';
  readonly combination: 'mean-logit';
  readonly members: readonly { readonly dir: string; readonly modelId: string; readonly hidden: number }[];
  /** The member whose memoryless baseline was copied (braid eval scores the model beside it); null when none had one. */
  readonly baselineFrom: string | null;
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
    .option('--force', 'overwrite an existing model directory')
    .action(async (dirs: string[], flags: { out: string; force?: boolean }) => {
      if (dirs.length < 2)
        throw new InvalidOptionError('models', `needs at least 2 model directories, got ${dirs.length}`);
      if (existsSync(path.join(flags.out, MODEL_JSON)) && !flags.force)
        throw new InvalidOptionError(
          'out',
          `"${flags.out}" already holds a model; pass --force to overwrite it`,
        );
      const members = await Promise.all(dirs.map((dir) => loadModel(dir)));
      const merged = ensembleModels(members);
      await saveModel(merged, flags.out);
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
      };
      await writeFile(path.join(flags.out, ENSEMBLE_REPORT), `${JSON.stringify(report, null, 2)}\n`);
      process.stdout.write(
        `braid ensemble: ${dirs.length} models (hidden ${members.map((m) => m.config.hidden).join(' + ')} = ${merged.config.hidden}) written to ${flags.out} as one, logits averaged${baselineFrom ? `; baseline from ${baselineFrom}` : ''}\n`,
      );
    });
}
