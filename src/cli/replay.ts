import { createWriteStream } from 'node:fs';
import type { Command } from 'commander';
import { concat, from, lastValueFrom, tap } from 'rxjs';
import type { StreamInput } from '../core/events.js';
import { orderPredictions, predictionLine } from '../pipeline/prediction-order.js';
import { REPLAY_QUEUE } from '../pipeline/prediction-pipeline.js';
import { recordingInfo } from '../record/recording-reader.js';
import { replayRecording } from '../record/replay.js';
import { commandLogger } from './logging.js';
import {
  createPipelineFromOptions,
  durationOption,
  type ModelCliOptions,
  withModelOptions,
} from './model-options.js';

interface ReplayCliOptions extends ModelCliOptions {
  speed: string;
  from?: number;
  to?: number;
  loop?: boolean;
  streams?: string;
  out?: string;
}

export function registerReplayCommand(program: Command): void {
  withModelOptions(
    program
      .command('replay')
      .description(
        'replay an MCAP recording through the live pipeline and write one prediction per window (NDJSON)',
      )
      .argument('<file>', 'recording (.mcap)')
      .option('--speed <n>', '1 = real time, 4 = four times faster, max = as fast as possible', 'max')
      .option('--from <duration>', 'start this far into the recording (e.g. 10s)', durationOption)
      .option('--to <duration>', 'stop this far into the recording (e.g. 40s)', durationOption)
      .option('--loop', 'start again at the end, forever')
      .option('--streams <ids>', 'only these streams (comma-separated)')
      .option('--out <file>', 'write predictions here instead of stdout'),
    // One backend by default so that two replays give byte-identical output (auto may pick differently each run).
    'cpu-fused',
  ).action(async (file: string, options: ReplayCliOptions, command: Command) => {
    const log = commandLogger(command);
    const warn = (w: { code: string; message: string }) =>
      log.warn({ event: 'recording_warning', code: w.code }, w.message);
    const info = await recordingInfo(file, { onWarning: warn });
    const wanted = options.streams
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const streams = info.streams.filter((s) => wanted === undefined || wanted.includes(s.streamId));
    const pipeline = await createPipelineFromOptions(options, log, REPLAY_QUEUE);
    // replayRecording checks speed, --from/--to and the stream names itself: a range or stream not in the file is a
    // RecordingError naming what the file has.
    const events$ = replayRecording(file, {
      speed: options.speed === 'max' ? 'max' : Number(options.speed),
      from: options.from,
      to: options.to,
      loop: options.loop,
      loopGap: pipeline.windowing.hop,
      streams: wanted,
      onWarning: warn,
    });
    const opens: StreamInput[] = streams.map((s) => ({
      control: 'open',
      streamId: s.streamId,
      modalities: s.modalities.filter((m) => m !== 'label'),
    }));
    const out = options.out ? createWriteStream(options.out) : process.stdout;
    let count = 0;
    await lastValueFrom(
      pipeline.run(concat(from(opens), events$)).pipe(
        orderPredictions(streams.map((s) => s.streamId)),
        tap((p) => {
          count++;
          out.write(predictionLine(p));
        }),
      ),
      { defaultValue: undefined },
    );
    if (out !== process.stdout)
      await new Promise<void>((resolve) => (out as NodeJS.WritableStream).end(resolve));
    const dropped = Object.entries(pipeline.stats().counters).filter(
      ([k, v]) => /dropped|rejected|late|bad_frame/.test(k) && v > 0,
    );
    log.info(
      { event: 'replayed', file, predictions: count, streams: streams.length },
      `${count} predictions from ${streams.length} stream(s) of ${file}`,
    );
    if (dropped.length > 0)
      log.warn(
        { event: 'dropped', counts: Object.fromEntries(dropped) },
        `not every event made it into a window: ${dropped.map(([k, v]) => `${k} ${v}`).join(', ')}`,
      );
  });
}
