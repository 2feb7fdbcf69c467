import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { InvalidOptionError } from '../core/errors.js';
import { registerExportCommand, registerExportModelCommand, registerImportCommand } from '../interop/cli.js';
import { registerEvalCommand, registerTrainCommand } from '../train/cli.js';
import { registerEnsembleCommand } from '../train/ensemble-cli.js';
import { registerDiffCommand } from './diff.js';
import { registerInfoCommand } from './info.js';
import { registerLiveCommand } from './live.js';
import { withLoggingOptions } from './logging.js';
import { registerRecordCommand } from './record.js';
import { registerReplayCommand } from './replay.js';
import { registerServeCommand } from './serve.js';
import { registerWorkerCommand } from './worker.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

/** `--max-producers` → BRAID_MAX_PRODUCERS: every option of every command can come from the environment. */
export const envName = (option: Option): string =>
  `BRAID_${option
    .attributeName()
    .replace(/[A-Z]/g, (c) => `_${c}`)
    .toUpperCase()}`;

/**
 * Commands whose options can all be set from the environment as well as on the command line (commander's
 * Option.env; the command line wins): a token or a port comes from a service's environment, not from `ps`.
 */
class BraidCommand extends Command {
  override createCommand(name?: string): Command {
    return new BraidCommand(name);
  }

  override createOption(flags: string, description?: string): Option {
    const option = new Option(flags, description);
    // Negations (--no-loop) share their positive's variable; help and version take none.
    if (!option.negate && option.long !== '--help' && option.long !== '--version')
      option.env(envName(option));
    return option;
  }

  override addOption(option: Option): this {
    if (
      option.envVar === undefined &&
      !option.negate &&
      option.long !== '--help' &&
      option.long !== '--version'
    )
      option.env(envName(option));
    return super.addOption(option);
  }
}

/** Builds the `braid` command. Each subcommand registers itself here only once it really works. */
export function buildCli(): Command {
  const program = withLoggingOptions(
    new BraidCommand('braid')
      .description(
        'Real-time multimodal sequence processing: align audio, video and text by capture time, run a stateful GRU per stream, serve predictions over WebSocket',
      )
      .version(pkg.version, '-V, --version')
      .showHelpAfterError()
      .exitOverride(),
  );
  registerServeCommand(program);
  registerWorkerCommand(program);
  registerReplayCommand(program);
  registerRecordCommand(program);
  registerLiveCommand(program);
  registerInfoCommand(program);
  registerDiffCommand(program);
  registerTrainCommand(program);
  registerEvalCommand(program);
  registerEnsembleCommand(program);
  registerExportCommand(program);
  registerImportCommand(program);
  registerExportModelCommand(program);
  for (const command of program.commands) command.exitOverride();
  return program;
}

/** Exit codes (docs/errors.md): 0 done, 1 a runtime failure, 2 a usage error; 130 is Ctrl-C before a command ended. */
export const EXIT = { ok: 0, failure: 1, usage: 2, interrupted: 130 } as const;

/** The exit code for an error that ended a command, and the line to print (none for commander's own output). */
export function exitFor(error: unknown): { code: number; message?: string } {
  if (error instanceof CommanderError) {
    // Help and --version are not errors; commander has printed the usage problem already.
    if (
      error.code === 'commander.helpDisplayed' ||
      error.code === 'commander.version' ||
      error.code === 'commander.help'
    )
      return { code: EXIT.ok };
    return { code: EXIT.usage };
  }
  const message = `braid: ${error instanceof Error ? error.message : String(error)}`;
  return { code: error instanceof InvalidOptionError ? EXIT.usage : EXIT.failure, message };
}

export async function main(argv: string[]): Promise<void> {
  await buildCli().parseAsync(argv);
}
