import type { Command } from 'commander';
import { lastValueFrom, tap } from 'rxjs';
import { predictionLine } from '../pipeline/prediction-order.js';
import { type CaptureOptions, captureInputs, withCaptureOptions } from './capture.js';
import { commandLogger } from './logging.js';
import { createPipelineFromOptions, type ModelCliOptions, withModelOptions } from './model-options.js';

interface LiveCliOptions extends CaptureOptions, ModelCliOptions {
  json?: boolean;
}

export function registerLiveCommand(program: Command): void {
  withModelOptions(
    withCaptureOptions(
      program
        .command('live')
        .description(
          'run the model on live capture (microphone, camera, text) and print a prediction per window',
        )
        .option('--json', 'print NDJSON predictions instead of a table'),
    ),
  ).action(async (options: LiveCliOptions, command: Command) => {
    const log = commandLogger(command);
    const pipeline = await createPipelineFromOptions(options, log);
    if (!options.json) console.log(['window end', ...pipeline.labels].join('\t'));
    await lastValueFrom(
      pipeline.run(captureInputs(options, log)).pipe(
        tap((p) => {
          if (options.json) process.stdout.write(predictionLine(p));
          else
            console.log(
              [
                new Date(p.windowEnd / 1000).toISOString().slice(11, 23),
                ...pipeline.labels.map((l) => (p.scores[l] ?? 0).toFixed(2)),
              ].join('\t'),
            );
        }),
      ),
      { defaultValue: undefined },
    );
  });
}
