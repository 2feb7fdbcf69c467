import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { mergeMap, type Subscription, tap, timer } from 'rxjs';
import { InvalidEventError, InvalidOptionError } from '../core/errors.js';
import { isStreamControl, type StreamInput } from '../core/events.js';
import { wallClockMicros } from '../core/time.js';
import type { PredictionPipelineRunner } from '../pipeline/prediction-pipeline.js';
import { WriteBacklogError } from '../record/errors.js';
import { McapRecorder } from '../record/recorder.js';
import { recordingInfo } from '../record/recording-reader.js';
import { replayInputs } from '../record/replay.js';
import { type PredictionPipeline, startServer } from '../server/server.js';
import {
  BUNDLED_RECORDING,
  createPipelineFromOptions,
  type ModelCliOptions,
  modelId,
  withModelOptions,
} from './model-options.js';

interface ServeOptions extends ModelCliOptions {
  host: string;
  port: string;
  token?: string;
  record?: string;
  replay?: string[];
  loop: boolean;
  speed: string;
  allowOrigin: string[];
}

export function registerServeCommand(program: Command): void {
  withModelOptions(
    program
      .command('serve')
      .description('serve the demo page, WebSocket /ingest and /subscribe, /healthz and /metrics')
      .option('--host <host>', 'address to bind (anything but loopback needs --token)', '127.0.0.1')
      .option('--port <port>', 'port (0 picks a free one)', '8080')
      .option('--token <token>', 'shared secret required by /ingest, /subscribe and /metrics')
      .option('--record <dir>', 'record every ingested stream into DIR/session-<time>.mcap')
      .option('--replay <file...>', 'also serve these recordings as live streams (paced in real time)')
      .option('--demo', `serve the bundled recording (${BUNDLED_RECORDING}) as a live stream`)
      .option('--no-loop', 'play --replay recordings once instead of looping them')
      .option('--speed <n>', 'replay speed', '1')
      .option('--allow-origin <origin...>', "browser origins allowed besides the server's own", []),
  ).action(async (options: ServeOptions & { demo?: boolean }) => {
    const log = (line: string) => console.error(line);
    const pipeline = await createPipelineFromOptions(options, log);
    let recorder: McapRecorder | undefined;
    let model: string | undefined;
    if (options.record !== undefined) {
      mkdirSync(options.record, { recursive: true });
      const path = join(options.record, `session-${new Date().toISOString().replace(/[:.]/g, '-')}.mcap`);
      model = await modelId(options.model);
      recorder = await McapRecorder.create(path, {
        metadata: { command: 'braid serve', model, modelDir: options.model },
      });
      log(`braid: recording ingested streams and their predictions (model ${model}) to ${path}`);
    }
    const server = await startServer({
      pipeline: recorder ? recordingPredictions(pipeline, recorder, model, log) : pipeline,
      host: options.host,
      port: Number(options.port),
      token: options.token,
      allowedOrigins: options.allowOrigin,
      log,
      onInput: recorder ? (input) => recordInput(recorder!, input, log) : undefined,
    });
    log(`braid: serving on ${server.url} (model ${options.model}, labels ${pipeline.labels.join(', ')})`);

    const replays = [...(options.replay ?? []), ...(options.demo ? [BUNDLED_RECORDING] : [])];
    const replaySubscriptions: Subscription[] = [];
    for (const file of replays) {
      if (!existsSync(file)) throw new InvalidOptionError('replay', `no recording at ${file}`);
      const info = await recordingInfo(file);
      for (const s of info.streams)
        server.push({ control: 'open', streamId: s.streamId, modalities: s.modalities });
      log(`braid: replaying ${file} (${info.streams.map((s) => s.streamId).join(', ')}) as live`);
      // Served as live: shift capture times so the recording starts now (latencies and charts then read as live).
      // The shift is a whole number of hops, so windows hold exactly what they held in the recording.
      const hop = pipeline.windowing.hop;
      // The replay starts when the wall clock reaches the shifted start, so its capture times track the clock.
      const offset = Math.ceil((wallClockMicros() - (info.startTime ?? 0)) / hop) * hop;
      const startIn = ((info.startTime ?? 0) + offset - wallClockMicros()) / 1000;
      replaySubscriptions.push(
        timer(Math.max(0, startIn))
          .pipe(
            // As its producers sent it: each stream opens before its first event and closes after its last, so
            // every pass of a loop starts the streams afresh and frees what they held.
            mergeMap(() =>
              replayInputs(file, { speed: Number(options.speed), loop: options.loop, loopGap: hop }),
            ),
          )
          .subscribe({
            next: (input) =>
              server.push(isStreamControl(input) ? input : { ...input, time: input.time + offset }),
            error: (error: unknown) =>
              log(
                `braid: replay of ${file} failed: ${error instanceof Error ? error.message : String(error)}`,
              ),
          }),
      );
    }

    const shutdown = async (signal: string) => {
      log(`braid: ${signal}, shutting down`);
      for (const s of replaySubscriptions) s.unsubscribe();
      await server.close();
      await recorder?.close();
      process.exit(0);
    };
    process.once('SIGINT', () => void shutdown('SIGINT'));
    process.once('SIGTERM', () => void shutdown('SIGTERM'));
  });
}

let recordFailureLogged = false;

async function recorded(write: Promise<void>, log: (line: string) => void): Promise<void> {
  try {
    await write;
  } catch (error) {
    // Invalid events and a full write queue are counted by the recorder (stats.rejected); a failing disk is said once.
    if (error instanceof InvalidEventError || error instanceof WriteBacklogError || recordFailureLogged)
      return;
    recordFailureLogged = true;
    log(
      `braid: recording failed, the server goes on without it: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

/** Records an accepted input; a stream's event channels are forgotten by the recorder when the stream closes. */
function recordInput(recorder: McapRecorder, input: StreamInput, log: (line: string) => void): void {
  if ('control' in input) {
    if (input.control === 'close') void recorded(recorder.releaseStream(input.streamId, 'event'), log);
    return;
  }
  void recorded(recorder.write(input), log);
}

/**
 * The pipeline as the server runs it, with each prediction also written beside its stream's inputs (with the
 * model's id), and the stream's prediction channel forgotten by the recorder after its last prediction. The server
 * is not touched: it runs this pipeline like any other.
 */
function recordingPredictions(
  pipeline: PredictionPipelineRunner,
  recorder: McapRecorder,
  model: string | undefined,
  log: (line: string) => void,
): PredictionPipeline {
  return {
    labels: pipeline.labels,
    inputs: pipeline.inputs,
    stats: () => pipeline.stats(),
    run: (input$) =>
      pipeline
        .run(input$, {
          onStream: (mark) => {
            if (mark.state === 'end') void recorded(recorder.releaseStream(mark.streamId, 'prediction'), log);
          },
        })
        .pipe(tap((p) => void recorded(recorder.writePrediction(p, { model }), log))),
  };
}
