import type { Command } from 'commander';
import { lastValueFrom, tap } from 'rxjs';
import { InvalidOptionError } from '../core/errors.js';
import { eventLine } from '../events/event-tracker.js';
import { predictionLine } from '../pipeline/prediction-order.js';
import { REPLAY_QUEUE } from '../pipeline/prediction-pipeline.js';
import { RecordingError } from '../record/errors.js';
import { McapRecorder } from '../record/recorder.js';
import { recordingInfo } from '../record/recording-reader.js';
import { commandLogger, recordingWarnings } from './logging.js';
import { parseMapOption } from './map-option.js';
import {
  createPipelineFromOptions,
  durationOption,
  eventSettingsFromOptions,
  type ModelCliOptions,
  positiveNumber,
  readToken,
  withEventsOption,
  withModelOptions,
} from './model-options.js';
import { failOnWriteError, OutputFile } from './output-file.js';
import { replayThroughPipeline } from './replay-run.js';
import { isServerUrl, replayToServer } from './replay-to.js';

/** `--to`: a duration (the range end) or a server URL (play into it). */
function durationOrUrl(value: string): number | string {
  return isServerUrl(value) ? value : durationOption(value);
}

interface ReplayCliOptions extends ModelCliOptions {
  speed: string;
  from?: number;
  /** A range end (µs), or with a URL the server to play into. */
  to?: number | string;
  until?: number;
  token?: string;
  tokenFile?: string;
  loop?: boolean;
  streams?: string;
  out?: string;
  overwrite?: boolean;
  map?: string[];
  eventsOut?: string;
}

export function registerReplayCommand(program: Command): void {
  withModelOptions(
    withEventsOption(program.command('replay'))
      .description(
        'replay an MCAP recording through the live pipeline and write one prediction per window (NDJSON, or an MCAP recording of the inputs with the new predictions)',
      )
      .argument('<file>', 'recording (.mcap)')
      .option(
        '--speed <n>',
        '1 = real time, 4 = four times faster, max = as fast as possible',
        (value: string) => (value === 'max' ? value : String(positiveNumber(value))),
        'max',
      )
      .option('--from <duration>', 'start this far into the recording (e.g. 10s)', durationOption)
      .option(
        '--to <duration|url>',
        'stop this far into the recording (e.g. 40s); or, with ws://HOST:PORT/ingest, play the recording into that server as live producers',
        durationOrUrl,
      )
      .option(
        '--until <duration>',
        'stop this far into the recording (the range end beside a --to URL)',
        durationOption,
      )
      .option('--token <token>', "with a --to URL: the server's token (better: BRAID_TOKEN)")
      .option('--token-file <file>', 'with a --to URL: read the token from this file')
      .option('--loop', 'start again at the end, forever')
      .option('--streams <ids>', 'only these streams (comma-separated)')
      .option(
        '--out <file>',
        'write here instead of stdout: NDJSON, or with a .mcap name a recording of the inputs and the new predictions',
      )
      .option('--overwrite', 'replace an existing .mcap --out file')
      .option(
        '--events-out <file>',
        "write each label's on/off events here (NDJSON: streamId, label, state, time, score, windowIndex)",
      )
      .option(
        '--map <topic=stream:modality...>',
        "read a topic of another tool's file as this stream and modality (audio, video, text, label), where braid cannot tell",
      ),
    // One backend by default so that two replays give byte-identical output (auto may pick differently each run).
    'cpu-fused',
  ).action(async (file: string, options: ReplayCliOptions, command: Command) => {
    const log = commandLogger(command);
    const onWarning = recordingWarnings(log);
    const map = options.map?.map(parseMapOption);
    const wanted = options.streams
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const writesEvents = options.eventsOut !== undefined || options.out?.toLowerCase().endsWith('.mcap');
    if (options.events !== undefined && !writesEvents)
      throw new InvalidOptionError(
        'events',
        'sets thresholds of label events, which only --events-out or an MCAP --out writes: add one',
      );
    if (wanted?.length === 0)
      throw new InvalidOptionError(
        'streams',
        `no stream names in "${options.streams}" (comma-separated ids)`,
      );
    if (typeof options.to === 'number' && options.until !== undefined)
      throw new InvalidOptionError(
        'until',
        'ends the range beside a --to URL; with --to a duration, that is the range end: give one of them',
      );
    // The range's end against its start before the model loads (the reader checks it again, for its other callers).
    const end = typeof options.to === 'number' ? options.to : options.until;
    if (end !== undefined && end <= (options.from ?? 0))
      throw new InvalidOptionError(
        typeof options.to === 'number' ? 'to' : 'until',
        `must be after ${options.from !== undefined ? `--from (${options.from} µs)` : "the recording's start (0 µs)"}, got ${end} µs: nothing would be replayed`,
      );
    if (typeof options.to === 'string') {
      if (options.out !== undefined)
        throw new InvalidOptionError('out', 'a replay into a server (--to URL) writes no output file');
      const token = options.tokenFile !== undefined ? readToken(options.tokenFile) : options.token;
      const result = await replayToServer(file, {
        url: options.to,
        token,
        speed: options.speed === 'max' ? 'max' : Number(options.speed),
        from: options.from,
        to: options.until,
        streams: wanted,
        map,
        onWarning,
        log,
      });
      const events = Object.values(result.sent).reduce((a, b) => a + b, 0);
      const refusals = Object.entries(result.refused);
      log.info(
        {
          event: 'replayed_to',
          file,
          url: options.to,
          sent: result.sent,
          refused: result.refused,
          offset: result.offset,
          bounds: result.bounds,
        },
        `${events} events of ${Object.keys(result.sent).length} stream(s) played into ${options.to}${refusals.length > 0 ? `, refused: ${refusals.map(([k, v]) => `${k} ${v}`).join(', ')}` : ''}`,
      );
      // Refused messages did not reach the pipeline: the server's predictions miss them, which is a failure.
      if (refusals.length > 0) process.exitCode = 1;
      return;
    }
    const mcapOut = options.out?.toLowerCase().endsWith('.mcap') ? options.out : undefined;
    // The plain output files opened first, before anything slow: one that cannot be written fails the command at
    // once, and whatever fails before the run leaves no output of this command behind.
    const eventsOut =
      options.eventsOut !== undefined ? await OutputFile.open(options.eventsOut, 'events-out') : undefined;
    let out: OutputFile | undefined;
    let recorder: McapRecorder | undefined;
    let info: Awaited<ReturnType<typeof recordingInfo>>;
    let pipeline: Awaited<ReturnType<typeof createPipelineFromOptions>>;
    let eventSettings: Awaited<ReturnType<typeof eventSettingsFromOptions>> | undefined;
    try {
      if (options.out !== undefined && !mcapOut) out = await OutputFile.open(options.out, 'out');
      info = await recordingInfo(file, { onWarning, map });
      pipeline = await createPipelineFromOptions(options, log, REPLAY_QUEUE);
      // Events go to --events-out and, beside the predictions, into an MCAP --out.
      eventSettings =
        options.eventsOut !== undefined || mcapOut !== undefined
          ? await eventSettingsFromOptions(options.model, pipeline.labels, options.events)
          : undefined;
      // An MCAP --out records the model's id: created once the model is loaded (a usage error all the same).
      recorder = mcapOut
        ? await McapRecorder.create(mcapOut, {
            overwrite: options.overwrite,
            metadata: {
              command: `braid ${process.argv.slice(2).join(' ')}`,
              model: pipeline.modelId,
              replayOf: file,
            },
          }).catch((error: unknown) => {
            throw error instanceof RecordingError ? new InvalidOptionError('out', error.message) : error;
          })
        : undefined;
    } catch (error) {
      eventsOut?.discard();
      out?.discard();
      throw error;
    }
    const model = pipeline.modelId;
    let eventCount = 0;
    // replayRecording checks speed, --from/--to and the stream names itself: a range or stream not in the file is a
    // RecordingError naming what the file has.
    const run = replayThroughPipeline(file, pipeline, {
      speed: options.speed === 'max' ? 'max' : Number(options.speed),
      from: options.from,
      to: options.to ?? options.until,
      loop: options.loop,
      streams: wanted,
      onWarning,
      map,
      recorder,
      model,
      ...(eventSettings && {
        events: {
          settings: eventSettings,
          onEvent: (e) => {
            eventCount++;
            eventsOut?.stream.write(eventLine(e));
          },
        },
      }),
    });
    let lines: NodeJS.WritableStream | undefined = out?.stream ?? (mcapOut ? undefined : process.stdout);
    // The reader of stdout gone (`| head`) while --events-out is still being written: stdout is let go and the run
    // goes on to finish the file (as `tee -p` does), instead of ending with the file cut short and exit 0.
    const stdoutClosed = (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE' || lines !== process.stdout) return;
      lines = undefined;
      log.info({ event: 'stdout_closed' }, `stdout was closed; finishing ${options.eventsOut}`);
    };
    if (lines === process.stdout && eventsOut) process.stdout.on('error', stdoutClosed);
    let count = 0;
    try {
      await lastValueFrom(
        run.predictions$.pipe(
          tap((p) => {
            count++;
            lines?.write(predictionLine(p));
          }),
          failOnWriteError(out?.stream, options.out ?? ''),
          failOnWriteError(eventsOut?.stream, options.eventsOut ?? ''),
        ),
        { defaultValue: undefined },
      );
    } finally {
      await recorder?.close();
    }
    // A write that fails after the last prediction (the final flush on a full disk) fails the command here.
    await out?.finish();
    await eventsOut?.finish();
    process.stdout.off('error', stdoutClosed);
    const streams = info.streams.filter((s) => wanted === undefined || wanted.includes(s.streamId));
    const dropped = Object.entries(pipeline.stats().counters).filter(
      ([k, v]) => /dropped|rejected|late|bad_frame/.test(k) && v > 0,
    );
    log.info(
      {
        event: 'replayed',
        file,
        predictions: count,
        streams: streams.length,
        out: mcapOut,
        model,
        ...(eventSettings && { events: eventCount, eventsOut: options.eventsOut }),
      },
      `${count} predictions from ${streams.length} stream(s) of ${file}${mcapOut ? `, written with the inputs to ${mcapOut} (model ${model})` : ''}${eventSettings ? `; ${eventCount} label events${eventsOut ? ` to ${options.eventsOut}` : ''}` : ''}`,
    );
    if (dropped.length > 0)
      log.warn(
        { event: 'dropped', counts: Object.fromEntries(dropped) },
        `not every event made it into a window: ${dropped.map(([k, v]) => `${k} ${v}`).join(', ')}`,
      );
    // A replay waits for the pipeline instead of dropping for room: if it ever did, the output is incomplete and
    // would differ from run to run, so that is a failure, not a warning.
    const lost = dropped.filter(
      ([k]) => k === 'decode_dropped_decode_backlog' || k === 'model_dropped_queue_full',
    );
    if (lost.length > 0) {
      log.error(
        { event: 'replay_lost_windows', counts: Object.fromEntries(lost) },
        `the replay lost windows for want of room (${lost.map(([k, v]) => `${k} ${v}`).join(', ')})`,
      );
      process.exitCode = 1;
    }
  });
}
