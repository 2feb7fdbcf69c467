import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { registerExportCommand, registerExportModelCommand, registerImportCommand } from '../interop/cli.js';
import { registerEvalCommand, registerTrainCommand } from '../train/cli.js';
import { registerDiffCommand } from './diff.js';
import { registerInfoCommand } from './info.js';
import { registerLiveCommand } from './live.js';
import { registerRecordCommand } from './record.js';
import { registerReplayCommand } from './replay.js';
import { registerServeCommand } from './serve.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

/** Builds the `braid` command. Each subcommand registers itself here only once it really works. */
export function buildCli(): Command {
  const program = new Command('braid')
    .description(
      'Real-time multimodal sequence processing: align audio, video and text by capture time, run a stateful GRU per stream, serve predictions over WebSocket',
    )
    .version(pkg.version, '-V, --version')
    .showHelpAfterError();
  registerServeCommand(program);
  registerReplayCommand(program);
  registerRecordCommand(program);
  registerLiveCommand(program);
  registerInfoCommand(program);
  registerDiffCommand(program);
  registerTrainCommand(program);
  registerEvalCommand(program);
  registerExportCommand(program);
  registerImportCommand(program);
  registerExportModelCommand(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  await buildCli().parseAsync(argv);
}
