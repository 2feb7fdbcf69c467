import { rmSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { filter, lastValueFrom, tap } from 'rxjs';
import { type AnySourceEvent, isStreamControl, type StreamInput } from '../core/events.js';
import { recordTo } from '../record/record-to.js';
import { McapRecorder } from '../record/recorder.js';
import { type CaptureOptions, captureInputs, withCaptureOptions } from './capture.js';
import { commandLogger } from './logging.js';

interface RecordCliOptions extends CaptureOptions {
  out: string;
  overwrite?: boolean;
}

export function registerRecordCommand(program: Command): void {
  withCaptureOptions(
    program
      .command('record')
      .description(
        'record live capture (microphone, camera, text) into an MCAP file; Ctrl-C finishes the file',
      )
      .requiredOption('--out <file>', 'recording to write (.mcap)')
      .option('--overwrite', 'replace an existing file'),
  ).action(async (options: RecordCliOptions, command: Command) => {
    const log = commandLogger(command);
    const inputs$ = captureInputs(options, log);
    const recorder = await McapRecorder.create(options.out, {
      overwrite: options.overwrite,
      metadata: { command: `braid ${process.argv.slice(2).join(' ')}` },
    });
    let events = 0;
    let refusedSeen = 0;
    /** Events the recorder refused (its write queue full: a disk slower than the capture), said as they start. */
    const refusedNow = () => Object.values(recorder.stats.rejected).reduce((a, b) => a + b, 0);
    try {
      await lastValueFrom(
        inputs$.pipe(
          filter((input: StreamInput): input is AnySourceEvent => !isStreamControl(input)),
          recordTo(recorder),
          tap(() => {
            events++;
            // Said once capture really runs (Ctrl-C is handled from then on), then now and then.
            if (events === 1)
              log.info(
                { event: 'recording', path: options.out },
                `recording to ${options.out}; Ctrl-C finishes the file`,
              );
            else if (events % 1000 === 0) {
              const refused = refusedNow();
              // Events that passed here and were refused are not in the file: counted apart.
              log.info(
                { event: 'progress', events: events - refused, refused },
                `${events - refused} events recorded${refused > 0 ? `, ${refused} refused` : ''}`,
              );
              if (refused > refusedSeen && refusedSeen === 0)
                log.warn(
                  { event: 'write_backlog', path: options.out, rejected: recorder.stats.rejected },
                  `the disk is not keeping up with the capture: events are being refused (${JSON.stringify(recorder.stats.rejected)})`,
                );
              refusedSeen = refused;
            }
          }),
        ),
        { defaultValue: undefined },
      );
    } catch (error) {
      // The capture's error is the one to report, whatever closing the file then says.
      await recorder.close().catch(() => undefined);
      // A capture that failed before it recorded anything leaves no file to block the retry (a regular file only:
      // --out /dev/null stays); one that failed later keeps what it captured, finished and readable.
      if (recorder.stats.events === 0) {
        if (statSync(options.out, { throwIfNoEntry: false })?.isFile()) rmSync(options.out, { force: true });
      } else
        log.warn(
          { event: 'capture_failed', path: options.out, events: recorder.stats.events },
          `capture failed: ${options.out} keeps the ${recorder.stats.events} events recorded before`,
        );
      throw error;
    }
    await recorder.close();
    const s = recorder.stats;
    const refused = Object.keys(s.rejected).length > 0 ? `, refused ${JSON.stringify(s.rejected)}` : '';
    log.info(
      { event: 'wrote', path: options.out, events: s.events, bytes: s.bytesWritten, rejected: s.rejected },
      `wrote ${options.out}: ${s.events} events, ${s.bytesWritten} bytes${refused}`,
    );
    // The file is finished and readable, but it misses what was captured and refused: that is a failure, as a replay
    // that lost windows is one.
    if (refusedNow() > 0) {
      log.error(
        { event: 'recording_incomplete', path: options.out, rejected: s.rejected },
        `${options.out} misses ${refusedNow()} captured events the recorder refused (${JSON.stringify(s.rejected)})`,
      );
      process.exitCode = 1;
    }
  });
}
