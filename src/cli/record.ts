import type { Command } from 'commander';
import { filter, lastValueFrom, tap } from 'rxjs';
import { type AnySourceEvent, isStreamControl, type StreamInput } from '../core/events.js';
import { recordTo } from '../record/record-to.js';
import { McapRecorder } from '../record/recorder.js';
import { type CaptureOptions, captureInputs, withCaptureOptions } from './capture.js';

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
  ).action(async (options: RecordCliOptions) => {
    const log = (line: string) => console.error(line);
    const inputs$ = captureInputs(options);
    const recorder = await McapRecorder.create(options.out, {
      overwrite: options.overwrite,
      metadata: { command: `braid ${process.argv.slice(2).join(' ')}` },
    });
    let events = 0;
    try {
      await lastValueFrom(
        inputs$.pipe(
          filter((input: StreamInput): input is AnySourceEvent => !isStreamControl(input)),
          recordTo(recorder),
          tap(() => {
            events++;
            // Said once capture really runs (Ctrl-C is handled from then on), then now and then.
            if (events === 1) log(`braid: recording to ${options.out}; Ctrl-C finishes the file`);
            else if (events % 1000 === 0) log(`braid: ${events} events recorded`);
          }),
        ),
        { defaultValue: undefined },
      );
    } finally {
      await recorder.close();
      const s = recorder.stats;
      const refused = Object.keys(s.rejected).length > 0 ? `, refused ${JSON.stringify(s.rejected)}` : '';
      log(`braid: wrote ${options.out}: ${s.events} events, ${s.bytesWritten} bytes${refused}`);
    }
  });
}
