import type { Command } from 'commander';
import { recordingInfo } from '../record/recording-reader.js';
import { commandLogger } from './logging.js';
import { parseMapOption } from './map-option.js';

export function registerInfoCommand(program: Command): void {
  program
    .command('info')
    .description('show the streams, modalities, times and schemas of an MCAP recording')
    .argument('<file>', 'recording (.mcap)')
    .option('--json', 'print JSON')
    .option(
      '--map <topic=stream:modality...>',
      "read a topic of another tool's file as this stream and modality (audio, video, text, label)",
    )
    .action(async (file: string, options: { json?: boolean; map?: string[] }, command: Command) => {
      const log = commandLogger(command);
      const info = await recordingInfo(file, {
        onWarning: (w) => log.warn({ event: 'recording_warning', code: w.code }, w.message),
        map: options.map?.map(parseMapOption),
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
            .join(
              ', ',
            )}${s.predictions ? `, predictions ${s.predictions}` : ''}${s.labelEvents ? `, label events ${s.labelEvents}` : ''}`,
        );
      // By topic: channel ids follow which stream's first message the recorder met first, an arrival order.
      const byTopic = (a: { topic: string }, b: { topic: string }) => a.topic.localeCompare(b.topic);
      const predictions = info.channels.filter((c) => c.kind === 'prediction').sort(byTopic);
      if (predictions.length > 0) {
        console.log('  prediction channels:');
        for (const c of predictions)
          console.log(`    ${c.topic}: ${c.messages} predictions, model ${c.model ?? 'not recorded'}`);
      }
      const labelEvents = info.channels.filter((c) => c.kind === 'label_event').sort(byTopic);
      if (labelEvents.length > 0) {
        console.log('  label event channels:');
        for (const c of labelEvents)
          console.log(`    ${c.topic}: ${c.messages} on/off events, model ${c.model ?? 'not recorded'}`);
      }
      const read = info.channels.filter((c) => c.origin === 'map' || c.origin === 'inferred');
      if (read.length > 0) {
        console.log('  channels of another tool, read as streams:');
        for (const c of read)
          console.log(
            `    ${c.topic} (${c.schema}, ${c.messageEncoding}) -> ${c.streamId}:${c.modality}${c.origin === 'map' ? ' (--map)' : ''}`,
          );
      }
      const skipped = info.channels.filter((c) => c.skipped !== undefined);
      if (skipped.length > 0)
        console.log(`  not read: ${skipped.map((c) => `${c.topic} (${c.skipped})`).join('; ')}`);
      console.log(`  schemas: ${info.schemas.join(', ')}`);
    });
}
