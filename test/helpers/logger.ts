import type { Logger } from '../../src/core/logger.js';

/** A logger that hands every message to `line`, whatever its level (for tests that wait on or check a message). */
export function lineLogger(line: (message: string) => void): Logger {
  const at = (_fields: Record<string, unknown>, message: string): void => line(message);
  return { error: at, warn: at, info: at, debug: at };
}
