import type { Command } from 'commander';
import { lastValueFrom, tap } from 'rxjs';
import { streamOrigin } from '../align/window-aligner.js';
import type { WindowingConfig } from '../align/windowing.js';
import type { WindowGrid } from '../client/window-grid.js';
import { predictionLine } from '../pipeline/prediction-order.js';
import { type CaptureOptions, captureInputs, withCaptureOptions } from './capture.js';
import { commandLogger } from './logging.js';
import { createPipelineFromOptions, type ModelCliOptions, withModelOptions } from './model-options.js';

/** The stream's window grid in the pipeline's windowing, as a server's `ready` gives it to a producer. */
export function streamGrid(streamId: string, windowing: WindowingConfig): WindowGrid {
  const { size, hop, phase } = windowing;
  return { origin: streamOrigin(streamId, { origin: 0, hop, phase }), size, hop };
}

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
      pipeline.run(captureInputs(options, log, streamGrid(options.streamId, pipeline.windowing))).pipe(
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
