import type { Command } from 'commander';
import { recordingInfo } from '../record/recording-reader.js';
import { commandLogger } from './logging.js';

export function registerInfoCommand(program: Command): void {
  program
    .command('info')
    .description('show the streams, modalities, times and schemas of an MCAP recording')
    .argument('<file>', 'recording (.mcap)')
    .option('--json', 'print JSON')
    .action(async (file: string, options: { json?: boolean }, command: Command) => {
      const log = commandLogger(command);
      const info = await recordingInfo(file, {
        onWarning: (w) => log.warn({ event: 'recording_warning', code: w.code }, w.message),
      });
      if (options.json) {
        console.log(JSON.stringify(info, null, 2));
        return;
      }
      console.log(
        `${info.path}: ${(info.duration / 1e6).toFixed(3)} s, ${info.messages} messages${info.complete ? '' : ' (INCOMPLETE: cut short)'}`,
      );
      for (const s of info.streams)
        console.log(
          `  ${s.streamId}: ${Object.entries(s.messages)
            .map(([m, n]) => `${m} ${n}`)
            .join(', ')}${s.predictions ? `, predictions ${s.predictions}` : ''}`,
        );
      console.log(`  schemas: ${info.schemas.join(', ')}`);
    });
}
