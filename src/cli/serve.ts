import { existsSync, mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { type Command, Option } from 'commander';
import { Counter, Gauge, type Registry } from 'prom-client';
import { mergeMap, type Subscription, tap, timer } from 'rxjs';
import { CLUSTER_WINDOWING } from '../cluster/windowing.js';
import { InvalidEventError, InvalidOptionError } from '../core/errors.js';
import { isStreamControl, type StreamInput } from '../core/events.js';
import type { Logger } from '../core/logger.js';
import { wallClockMicros } from '../core/time.js';
import { WriteBacklogError } from '../record/errors.js';
import { McapRecorder } from '../record/recorder.js';
import { recordingInfo } from '../record/recording-reader.js';
import { replayInputs } from '../record/replay.js';
import type { PredictionPipeline } from '../server/pipeline.js';
import { isLoopbackHost } from '../server/request-guard.js';
import { startServer } from '../server/server.js';
import { ShardedPipeline } from '../shards/sharded-pipeline.js';
import { startGateway, withGatewayOptions } from './cluster-options.js';
import { commandLogger, recordingWarnings } from './logging.js';
import {
  BUNDLED_RECORDING,
  createPipelineFromOptions,
  durationOption,
  eventSettingsFromOptions,
  gpuStreamsOf,
  type ModelCliOptions,
  portNumber,
  positiveInteger,
  positiveNumber,
  readToken,
  withEventsOption,
  withModelOptions,
} from './model-options.js';

interface ServeOptions extends ModelCliOptions {
  host: string;
  port: number;
  token?: string;
  tokenFile?: string;
  record?: string;
  replay?: string[];
  loop: boolean;
  speed: number;
  allowOrigin: string[];
  allowHost: string[];
  maxProducers: number;
  maxSubscribers: number;
  maxPerAddress: number;
  helloTimeout: number;
  idleTimeout: number;
  heartbeat: number;
  resumeGrace: number;
  workers: number;
  redis?: string;
  partitions: number;
  lagCap: number;
}

/** Backends that batch every stream on one device already: they run in one thread. */
const SINGLE_THREAD_BACKENDS = new Set(['webgpu', 'tensorflow']);

export function registerServeCommand(program: Command): void {
  withModelOptions(
    withGatewayOptions(
      withEventsOption(program.command('serve'))
        .description('serve the demo page, WebSocket /ingest and /subscribe, /healthz and /metrics')
        .option('--host <host>', 'address to bind (anything but loopback needs --token)', '127.0.0.1')
        .addOption(
          new Option('--port <port>', 'port (0 picks a free one)').argParser(portNumber).default(8080),
        )
        .option(
          '--token <token>',
          'shared secret required by /ingest, /subscribe and /metrics (better: BRAID_TOKEN)',
        )
        .option('--token-file <file>', 'read the token from this file (kept out of `ps` and the environment)')
        .option('--record <dir>', 'record every ingested stream into DIR/session-<time>.mcap')
        .option('--replay <file...>', 'also serve these recordings as live streams (paced in real time)')
        .option('--demo', `serve the bundled recording (${BUNDLED_RECORDING}) as a live stream`)
        .option('--no-loop', 'play --replay recordings once instead of looping them')
        .addOption(new Option('--speed <n>', 'replay speed').argParser(positiveNumber).default(1))
        .option('--allow-origin <origin...>', "browser origins allowed besides the server's own", [])
        .option(
          '--allow-host <name...>',
          'host names a loopback server answers besides 127.0.0.1, localhost and [::1] (behind a proxy)',
          [],
        )
        .addOption(
          new Option('--max-producers <n>', 'producer connections at once')
            .argParser(positiveInteger)
            .default(2048),
        )
        .addOption(
          new Option('--max-subscribers <n>', 'subscriber connections at once')
            .argParser(positiveInteger)
            .default(1024),
        )
        .addOption(
          new Option('--max-per-address <n>', 'connections from one remote address (loopback exempt)')
            .argParser(positiveInteger)
            .default(256),
        )
        .addOption(
          new Option('--hello-timeout <duration>', 'close producers that send no valid hello by then')
            .argParser(durationOption)
            .default(10_000_000, '10s'),
        )
        .addOption(
          new Option(
            '--heartbeat <duration>',
            'ping every connection this often; two missed pongs cut it off',
          )
            .argParser(durationOption)
            .default(10_000_000, '10s'),
        )
        .addOption(
          new Option(
            '--resume-grace <duration>',
            'how long a cut-off producer may resume its stream (0: never)',
          )
            .argParser(durationOption)
            .default(30_000_000, '30s'),
        )
        .addOption(
          new Option('--idle-timeout <duration>', 'close producers that send nothing for this long')
            .argParser(durationOption)
            .default(300_000_000, '5m'),
        )
        .addOption(
          new Option(
            '--workers <n>',
            'threads running the streams (sharded by stream id); 1: all in the main thread. GPU backends: 1',
          )
            .argParser(positiveInteger)
            .default(availableParallelism(), 'the number of cores'),
        ),
    ),
  ).action(async (options: ServeOptions & { demo?: boolean }, command: Command) => {
    const log = commandLogger(command);
    // Everything the command line can get wrong is refused before the slow start (model load, backend timing).
    const token = options.tokenFile !== undefined ? readToken(options.tokenFile) : options.token;
    const replays = [...(options.replay ?? []), ...(options.demo ? [BUNDLED_RECORDING] : [])];
    for (const file of replays)
      if (!existsSync(file)) throw new InvalidOptionError('replay', `no recording at ${file}`);
    if (!isLoopbackHost(options.host) && (token === undefined || token.length < 8))
      throw new InvalidOptionError(
        'token',
        `binding to ${options.host} exposes the server beyond this machine: pass --token, BRAID_TOKEN or --token-file (8+ characters)`,
      );
    if (options.redis !== undefined && options.record !== undefined)
      throw new InvalidOptionError(
        'record',
        'a cluster gateway (--redis) records nothing: record with a plain serve',
      );
    // Read now, after the checks that cost nothing (a damaged summary costs full scans): a file that is not a
    // recording fails the command before the server listens, not after.
    const replayWarnings = replays.map((file) => recordingWarnings(log, file));
    const replayInfos = await Promise.all(
      replays.map((file, i) => recordingInfo(file, { onWarning: replayWarnings[i] })),
    );
    const cluster = options.redis !== undefined;
    // A gateway runs no model: it needs only what the workers' model tells clients (labels, windowing, inputs).
    const runner = await createPipelineFromOptions(
      cluster ? { ...options, backend: 'cpu-fused' } : options,
      log,
      undefined,
      cluster ? { windowing: CLUSTER_WINDOWING } : {},
    );
    const backend = runner.selection.backend;
    const explicitWorkers = command.getOptionValueSource('workers') !== 'default';
    if (SINGLE_THREAD_BACKENDS.has(backend) && explicitWorkers && options.workers > 1)
      throw new InvalidOptionError(
        'workers',
        `backend ${backend} batches every stream on one device in one thread: use --workers 1 (or a CPU backend)`,
      );
    const workers = cluster || SINGLE_THREAD_BACKENDS.has(backend) ? 1 : options.workers;
    const pipeline =
      workers > 1
        ? await ShardedPipeline.create(runner, {
            shards: workers,
            modelDir: options.model,
            backend,
            gpuStreams: gpuStreamsOf(options),
            log,
          })
        : runner;
    if (!cluster)
      log.info(
        { event: 'workers', workers, backend },
        workers > 1
          ? `${workers} shard threads run the streams (sharded by stream id), each on ${backend}`
          : 'the streams run in the main thread',
      );
    const gateway = cluster
      ? await startGateway(options.redis!, options.partitions, options.lagCap, runner, log)
      : undefined;
    const served: PredictionPipeline = gateway?.pipeline ?? pipeline;
    const events = await eventSettingsFromOptions(options.model, pipeline.labels, options.events);
    let recorder: McapRecorder | undefined;
    if (options.record !== undefined) {
      mkdirSync(options.record, { recursive: true });
      const path = join(options.record, `session-${new Date().toISOString().replace(/[:.]/g, '-')}.mcap`);
      recorder = await McapRecorder.create(path, {
        metadata: { command: 'braid serve', model: pipeline.modelId, modelDir: options.model },
      });
      log.info(
        { event: 'recording', path, model: pipeline.modelId },
        `recording ingested streams and their predictions (model ${pipeline.modelId}) to ${path}`,
      );
    }
    const recordFailure = { logged: false };
    const server = await startServer({
      pipeline: recorder ? recordingPredictions(pipeline, recorder, log, recordFailure) : served,
      health: gateway?.health,
      host: options.host,
      port: options.port,
      token,
      allowedOrigins: options.allowOrigin,
      allowedHosts: options.allowHost,
      connections: {
        maxProducers: options.maxProducers,
        maxSubscribers: options.maxSubscribers,
        maxPerAddress: options.maxPerAddress,
      },
      timeouts: { helloMs: options.helloTimeout / 1000, idleMs: options.idleTimeout / 1000 },
      heartbeatMs: options.heartbeat / 1000,
      resumeGraceMs: options.resumeGrace / 1000,
      log,
      events,
      onInput: recorder ? (input) => recordInput(recorder!, input, log, recordFailure) : undefined,
      // Each label's on/off events beside the stream's predictions; the server tells of a stream's closing events
      // before its end reaches the recorder (recordingPredictions), which then lets the channel go.
      onEvent: recorder
        ? (e) => void recorded(recorder!.writeLabelEvent(e, { model: pipeline.modelId }), log, recordFailure)
        : undefined,
    });
    if (recorder) registerRecorderMetrics(server.metrics.registry, recorder);
    gateway?.registerMetrics(server.metrics.registry);
    log.info(
      { event: 'serving', url: server.url, model: pipeline.modelId, labels: pipeline.labels },
      `serving on ${server.url} (model ${pipeline.modelId}, labels ${pipeline.labels.join(', ')})`,
    );

    const replaySubscriptions: Subscription[] = [];
    for (const [i, file] of replays.entries()) {
      const info = replayInfos[i]!;
      for (const s of info.streams)
        server.push({ control: 'open', streamId: s.streamId, modalities: s.modalities });
      log.info(
        { event: 'replaying', file, streams: info.streams.map((s) => s.streamId) },
        `replaying ${file} (${info.streams.map((s) => s.streamId).join(', ')}) as live`,
      );
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
              replayInputs(file, {
                speed: options.speed,
                loop: options.loop,
                loopGap: hop,
                onWarning: replayWarnings[i],
              }),
            ),
          )
          .subscribe({
            next: (input) =>
              server.push(isStreamControl(input) ? input : { ...input, time: input.time + offset }),
            // A file damaged part-way: its streams close there (their windows are put out); the server goes on.
            error: (error: unknown) => {
              log.error(
                {
                  event: 'replay_failed',
                  file,
                  error: error instanceof Error ? error.message : String(error),
                },
                `replay of ${file} failed: ${error instanceof Error ? error.message : String(error)}`,
              );
              for (const s of info.streams) server.push({ control: 'close', streamId: s.streamId });
            },
          }),
      );
    }

    // A stop never crashes: a recording that failed while serving (a full disk...) was logged when it happened and
    // is reported once more here, as a message, with exit code 1 (docs/errors.md).
    const shutdown = async (signal: string) => {
      log.info({ event: 'shutdown', signal }, `${signal}, shutting down`);
      for (const s of replaySubscriptions) s.unsubscribe();
      await server.close();
      gateway?.close();
      let code = 0;
      if (recorder) {
        try {
          await recorder.close();
          log.info(
            { event: 'recording_complete', path: recorder.path, events: recorder.stats.events },
            `recording complete: ${recorder.path} (${recorder.stats.events} events)`,
          );
        } catch (error) {
          code = 1;
          const why = error instanceof Error ? error.message : String(error);
          log.error(
            { event: 'recording_incomplete', path: recorder.path, events: recorder.stats.events, error: why },
            `the recording ${recorder.path} is incomplete (${recorder.stats.events} events written before it failed): ${why}`,
          );
        }
      }
      process.exit(code);
    };
    process.once('SIGINT', () => void shutdown('SIGINT'));
    process.once('SIGTERM', () => void shutdown('SIGTERM'));
  });
}

async function recorded(write: Promise<void>, log: Logger, failure: { logged: boolean }): Promise<void> {
  try {
    await write;
  } catch (error) {
    // Invalid events and a full write queue are counted by the recorder (stats.rejected); a failing disk is said once.
    if (error instanceof InvalidEventError || error instanceof WriteBacklogError || failure.logged) return;
    failure.logged = true;
    const why = error instanceof Error ? error.message : String(error);
    log.error(
      { event: 'recording_failed', error: why },
      `recording failed, the server goes on without it: ${why}`,
    );
  }
}

/** Records an accepted input; a stream's event channels are forgotten by the recorder when the stream closes. */
function recordInput(
  recorder: McapRecorder,
  input: StreamInput,
  log: Logger,
  failure: { logged: boolean },
): void {
  if (isStreamControl(input)) {
    if (input.control === 'close')
      void recorded(recorder.releaseStream(input.streamId, 'event'), log, failure);
    return;
  }
  void recorded(recorder.write(input), log, failure);
}

/**
 * The pipeline as the server runs it, with each prediction also written beside its stream's inputs (with the
 * model's id), and the stream's prediction channel forgotten by the recorder after its last prediction. The server
 * is not touched: it runs this pipeline like any other (its sinks passed on).
 */
function recordingPredictions(
  pipeline: PredictionPipeline & { readonly modelId: string },
  recorder: McapRecorder,
  log: Logger,
  failure: { logged: boolean },
): PredictionPipeline {
  return {
    labels: pipeline.labels,
    inputs: pipeline.inputs,
    modelId: pipeline.modelId,
    windowing: pipeline.windowing,
    stats: () => pipeline.stats?.() ?? { counters: {} },
    run: (input$, sinks) =>
      pipeline
        .run(input$, {
          ...sinks,
          onStream: (mark) => {
            // The server's first: a stream's closing events are written before its channels are let go.
            sinks?.onStream?.(mark);
            if (mark.state === 'end') {
              void recorded(recorder.releaseStream(mark.streamId, 'prediction'), log, failure);
              void recorded(recorder.releaseStream(mark.streamId, 'label_event'), log, failure);
            }
          },
        })
        .pipe(
          tap((p) => void recorded(recorder.writePrediction(p, { model: pipeline.modelId }), log, failure)),
        ),
  };
}

/** The recorder's counters in /metrics: events written, refused by reason, and whether the file failed. */
function registerRecorderMetrics(registry: Registry, recorder: McapRecorder): void {
  new Gauge({
    name: 'braid_recorder_events',
    help: 'Events written to the recording',
    registers: [registry],
    collect() {
      this.set(recorder.stats.events);
    },
  });
  new Gauge({
    name: 'braid_recorder_failed',
    help: '1 once the recording can no longer be written (disk full, I/O error); the server goes on without it',
    registers: [registry],
    collect() {
      this.set(recorder.failed ? 1 : 0);
    },
  });
  const seen = new Map<string, number>();
  new Counter({
    name: 'braid_recorder_rejected_total',
    help: 'Events the recorder refused, by reason (write_backlog, seq_too_large, invalid events, after a failure)',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      for (const [reason, n] of Object.entries(recorder.stats.rejected)) {
        const delta = n - (seen.get(reason) ?? 0);
        if (delta > 0) this.inc({ reason }, delta);
        seen.set(reason, n);
      }
    },
  });
}
