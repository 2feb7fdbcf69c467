import { existsSync, statSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import type { WindowingConfig } from '../align/windowing.js';
import { InvalidOptionError } from '../core/errors.js';
import { type FeatureConfig, parseFeatureConfig } from '../features/config.js';
import { readFeatureConfigFile } from '../features/config-file.js';
import { loadModel, MODEL_JSON } from '../model/model-io.js';
import { expandRecordings } from '../train/cli.js';
import type { SessionSummary } from '../train/dataset.js';
import { exportWindows } from './export-windows.js';
import { importModel, saveImportedModel } from './import-model.js';
import { exportKerasModel } from './keras-export.js';
import { writeLayersModel } from './layers-files.js';
import { liveWindowing } from './windowing.js';

const labelList = (text: string | undefined): string[] | undefined =>
  text
    ?.split(',')
    .map((l) => l.trim())
    .filter(Boolean);

/** What a session lost on the way to windows, as `late 3, rejected_duplicate 1`; empty when nothing. */
function losses(session: SessionSummary): string {
  const c = session.counters;
  const parts: [string, number][] = [
    ['late', c.late],
    ...Object.entries(c.rejected).map(([k, v]) => [`rejected_${k}`, v] as [string, number]),
    ...Object.entries(c.badFrames).map(([k, v]) => [`bad_frame_${k}`, v] as [string, number]),
    ...Object.entries(c.decodeDropped).map(([k, v]) => [`decode_dropped_${k}`, v] as [string, number]),
    ['label_only_windows', session.labelOnlyWindows],
  ];
  return parts
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
}

interface ExportFlags {
  out: string;
  model?: string;
  features?: string;
  labels?: string;
}

/** `braid export <recordings...> --out windows.npz [--model DIR | --features CONFIG]`. */
export function registerExportCommand(program: Command): Command {
  return program
    .command('export')
    .description(
      "Export recordings' windows as the live pipeline builds them (aligned, featurized, fused, not normalised) to an .npz for NumPy and Keras",
    )
    .argument('<recordings...>', 'MCAP recordings, or directories of them')
    .requiredOption('--out <file>', '.npz file to write (x_<seq>, y_<seq>, t_<seq> arrays and meta.json)')
    .option('--model <dir>', "use a braid model's feature config, windowing and labels")
    .option('--features <file>', 'feature config JSON (default: the live default)')
    .option('--labels <names>', 'label columns, comma-separated (default: every label found, or the model’s)')
    .action(async (inputs: string[], flags: ExportFlags) => {
      if (flags.model !== undefined && flags.features !== undefined)
        throw new InvalidOptionError(
          'features',
          'give --model or --features, not both: a model brings its own features',
        );
      if (statSync(flags.out, { throwIfNoEntry: false })?.isDirectory())
        throw new InvalidOptionError('out', `${flags.out} is a folder: name the .npz file to write`);
      let featureConfig: FeatureConfig | undefined;
      let windowing: WindowingConfig = liveWindowing();
      let labels = labelList(flags.labels);
      if (flags.model !== undefined) {
        const model = await loadModel(flags.model);
        featureConfig = parseFeatureConfig(model.config.featureConfig, 'model.featureConfig');
        windowing = liveWindowing(model.config.windowing);
        labels ??= [...model.config.labels];
      } else if (flags.features !== undefined) featureConfig = await readFeatureConfigFile(flags.features);
      const files = await expandRecordings(inputs);
      process.stderr.write(`braid export: reading ${files.length} recording(s)...\n`);
      const { meta, npz } = await exportWindows(files, {
        windowing,
        ...(featureConfig ? { featureConfig } : {}),
        ...(labels ? { labels } : {}),
        ...(flags.model === undefined ? {} : { modelDir: flags.model }),
      });
      await mkdir(path.dirname(path.resolve(flags.out)), { recursive: true });
      const tmp = `${flags.out}.${process.pid}.tmp`;
      // A write or rename that fails (a full disk, --out naming a folder...) leaves no temporary file behind.
      try {
        await writeFile(tmp, npz);
        await rename(tmp, flags.out);
      } catch (error) {
        await rm(tmp, { force: true });
        throw error;
      }
      for (const session of meta.sessions as SessionSummary[]) {
        const lost = losses(session);
        if (lost) process.stderr.write(`braid export: warning: ${session.path}: ${lost}\n`);
      }
      const windows = meta.sequences.reduce((n, s) => n + s.windows, 0);
      process.stdout.write(
        `braid export: ${meta.sequences.length} sequence(s), ${windows} windows × ${meta.width} features, labels ${meta.labels.join(', ') || 'none'}, from ${files.length} recording(s) to ${flags.out} (${npz.byteLength} bytes)\n`,
      );
    });
}

interface ImportFlags {
  out: string;
  featuresFrom?: string;
  labels?: string;
  force?: boolean;
}

/** `braid import MODEL.json --out models/NAME --features-from windows.npz`. */
export function registerImportCommand(program: Command): Command {
  return program
    .command('import')
    .description(
      'Import a Keras model (TensorFlow.js layers format, as tensorflowjs_converter writes it) as a braid model directory',
    )
    .argument('<model.json>', 'layers-format model.json (weight shards beside it)')
    .requiredOption('--out <dir>', 'braid model directory to write')
    .option(
      '--features-from <npz>',
      'the braid export the model was trained on (features, labels, windowing)',
    )
    .option('--labels <names>', "names of the head's outputs, comma-separated (default: the export's labels)")
    .option('--force', 'overwrite an existing model directory')
    .action(async (file: string, flags: ImportFlags) => {
      if (existsSync(path.join(flags.out, MODEL_JSON)) && !flags.force)
        throw new InvalidOptionError(
          'out',
          `"${flags.out}" already holds a model; pass --force to overwrite it`,
        );
      const labels = labelList(flags.labels);
      const { model, report } = await importModel(file, {
        ...(flags.featuresFrom === undefined ? {} : { featuresFrom: flags.featuresFrom }),
        ...(labels ? { labels } : {}),
      });
      await saveImportedModel(model, report, flags.out);
      const c = model.config;
      process.stdout.write(
        `${report.layers.map((l) => `  ${l.layer} (${l.className}) -> ${l.mappedTo}`).join('\n')}\nbraid import: ${c.cell} ${c.hidden}, labels ${c.labels.join(', ')}, model written to ${flags.out}\n`,
      );
    });
}

/** `braid export-model DIR --out model.json`. */
export function registerExportModelCommand(program: Command): Command {
  return program
    .command('export-model')
    .description(
      'Write a braid model in the TensorFlow.js layers format (Keras Sequential) for Keras and tf.loadLayersModel',
    )
    .argument('<dir>', 'braid model directory')
    .requiredOption('--out <file>', 'model.json to write (its weights go beside it as <name>.weights.bin)')
    .action(async (dir: string, flags: { out: string }) => {
      const model = await loadModel(dir);
      await writeLayersModel(flags.out, exportKerasModel(model));
      process.stdout.write(
        `braid export-model: ${model.config.cell} ${model.config.hidden} written to ${flags.out}\n`,
      );
    });
}
