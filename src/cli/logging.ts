import { type Command, InvalidArgumentError, Option } from 'commander';
import pino from 'pino';
import pretty from 'pino-pretty';
import type { Logger } from '../core/logger.js';

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFormat = 'json' | 'pretty';

export interface LoggingOptions {
  readonly logLevel: LogLevel;
  /** Default: pretty when stderr is a terminal, JSON lines otherwise (a service, a pipe, a log collector). */
  readonly logFormat?: LogFormat;
}

/**
 * braid's log: pino, to stderr (stdout stays for a command's output: predictions, tables), one structured line per
 * event. Synchronous, so nothing logged is lost when a command exits.
 */
export function createLogger(options: LoggingOptions, tty = process.stderr.isTTY === true): pino.Logger {
  const format = options.logFormat ?? (tty ? 'pretty' : 'json');
  const base = { level: options.logLevel, base: { app: 'braid' } };
  if (format === 'json') return pino(base, pino.destination({ fd: 2, sync: true }));
  return pino(
    base,
    pretty({
      destination: 2,
      sync: true,
      colorize: tty,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname,app',
      singleLine: true,
    }),
  );
}

const choice =
  <T extends string>(name: string, values: readonly T[]) =>
  (value: string): T => {
    if (!(values as readonly string[]).includes(value))
      throw new InvalidArgumentError(`${name} must be one of ${values.join(', ')}, got "${value}"`);
    return value as T;
  };

/** Adds --log-level and --log-format (BRAID_LOG_LEVEL, BRAID_LOG_FORMAT) to the program, for every command. */
export function withLoggingOptions(program: Command): Command {
  return program
    .addOption(
      new Option('--log-level <level>', `${LOG_LEVELS.join(' | ')}`)
        .argParser(choice('--log-level', LOG_LEVELS))
        .default('info')
        .env('BRAID_LOG_LEVEL'),
    )
    .addOption(
      new Option('--log-format <format>', 'json | pretty (default: pretty on a terminal, json otherwise)')
        .argParser(choice('--log-format', ['json', 'pretty'] as const))
        .env('BRAID_LOG_FORMAT'),
    );
}

/** The logger a command's action uses, from the program's logging options. */
export function commandLogger(command: Command): Logger & pino.Logger {
  return createLogger(command.optsWithGlobals() as unknown as LoggingOptions);
}

/**
 * A recording reader's `onWarning` that logs each warning (truncation, skipped channels, bad messages) as a
 * `recording_warning` once: a command reads a file more than once (its summary, then a replay, each pass of a loop).
 */
export function recordingWarnings(
  log: Logger,
  file?: string,
): (w: { code: string; message: string }) => void {
  const seen = new Set<string>();
  return (w) => {
    const key = `${w.code}\n${w.message}`;
    if (seen.has(key)) return;
    seen.add(key);
    log.warn({ event: 'recording_warning', code: w.code, ...(file !== undefined && { file }) }, w.message);
  };
}
