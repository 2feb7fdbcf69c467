/**
 * Where braid's components log: one structured line per thing that happened (fields, then a message), at a level.
 * pino's loggers fit it as they are; the CLI makes one (src/cli/logging.ts), libraries default to silence.
 */
export interface Logger {
  error(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
  debug(fields: Record<string, unknown>, message: string): void;
}

const nothing = (): void => {};

/** Says nothing: the default of every component that takes a logger. */
export const silentLogger: Logger = { error: nothing, warn: nothing, info: nothing, debug: nothing };
