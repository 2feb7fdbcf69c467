import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { Observable } from 'rxjs';
import { SourceError } from '../core/errors.js';

/** What a child process wrote: a chunk of stdout, or one complete line of stderr. */
export type ProcessOutput =
  | { readonly kind: 'stdout'; readonly data: Buffer }
  | { readonly kind: 'stderr'; readonly line: string };

export interface ProcessSpec {
  readonly command: string;
  readonly args: readonly string[];
  /** Name in error messages (default: the command). */
  readonly name?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Fail with a SourceError when stdout stays silent this long, in ms (0, the default, never). */
  readonly noDataTimeoutMs?: number;
  /** Time between SIGTERM and SIGKILL when the subscriber leaves, in ms (default 2000). */
  readonly killGraceMs?: number;
  /** Stderr lines kept for error messages when this returns true (default: all). */
  readonly keepForErrors?: (line: string) => boolean;
  /**
   * Stderr lines that show the program at work while stdout is silent for good reason (ffmpeg's `-progress` while
   * `-re` waits out a long still frame): each keeps the no-data watchdog from firing; they are not passed on.
   */
  readonly isProgress?: (line: string) => boolean;
}

const DEFAULT_KILL_GRACE_MS = 2_000;
const TAIL_LINES = 8;

/** Splits a byte stream into lines (\n, \r\n or a lone \r, as progress output uses) and keeps the last few. */
export class LineSplitter {
  #partial = '';
  readonly #tail: string[] = [];
  readonly #keep: (line: string) => boolean;
  /** Holds back a UTF-8 character cut between two chunks instead of turning each half into U+FFFD. */
  readonly #decoder = new StringDecoder('utf8');

  constructor(keep: (line: string) => boolean = () => true) {
    this.#keep = keep;
  }

  push(chunk: Buffer | string): string[] {
    const text = typeof chunk === 'string' ? chunk : this.#decoder.write(chunk);
    const parts = (this.#partial + text).split(/\r\n|\n|\r/);
    this.#partial = parts.pop() ?? '';
    return parts.filter((line) => this.#remember(line));
  }

  /** The unterminated last line, if any. */
  end(): string[] {
    const rest = this.#partial + this.#decoder.end();
    this.#partial = '';
    return rest !== '' && this.#remember(rest) ? [rest] : [];
  }

  /** The last lines kept, joined for an error message. */
  tail(): string {
    return this.#tail.join(' | ');
  }

  #remember(line: string): boolean {
    if (line.trim() === '') return false;
    if (this.#keep(line)) {
      this.#tail.push(line.trim());
      if (this.#tail.length > TAIL_LINES) this.#tail.shift();
    }
    return true;
  }
}

/** Calls `onSilent` once when `kick` was not called for `ms` milliseconds; `ms` ≤ 0 disables it. */
export class Watchdog {
  readonly #ms: number;
  readonly #onSilent: () => void;
  #timer: NodeJS.Timeout | undefined;

  constructor(ms: number, onSilent: () => void) {
    this.#ms = ms;
    this.#onSilent = onSilent;
    this.kick();
  }

  kick(): void {
    if (this.#ms <= 0) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(this.#onSilent, this.#ms);
  }

  stop(): void {
    clearTimeout(this.#timer);
  }
}

/** Ends a child: SIGTERM, then SIGKILL if it is still alive after the grace period. Node reaps it on exit. */
export function terminate(child: ChildProcess, graceMs = DEFAULT_KILL_GRACE_MS): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }, graceMs);
  timer.unref();
  child.once('exit', () => clearTimeout(timer));
}

/** Why a child stopped, for a SourceError: exit code or signal, plus its last stderr lines. */
export function exitMessage(
  name: string,
  code: number | null,
  signal: NodeJS.Signals | null,
  stderr: string,
): string {
  const how = signal !== null ? `was killed by ${signal}` : `exited with code ${code}`;
  return `${name} ${how}${stderr ? `: ${stderr}` : ' (no error output)'}`;
}

/** Whether an executable `program` is in one of PATH's directories (default: this process's PATH). */
export function onPath(program: string, path: string = process.env['PATH'] ?? ''): boolean {
  return path.split(delimiter).some((dir) => {
    if (dir === '') return false;
    try {
      accessSync(join(dir, program), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** A SourceError for a process that could not be started, naming the program when it is not installed. */
export function spawnFailure(name: string, error: NodeJS.ErrnoException): SourceError {
  if (error.code === 'ENOENT')
    return new SourceError(`${name} not found: is it installed and on PATH? (${error.message})`, {
      cause: error,
    });
  return new SourceError(`cannot start ${name}: ${error.message}`, { cause: error });
}

/**
 * Runs a program while subscribed: stdout chunks and stderr lines in the order they arrive, completion when it
 * exits 0, a {@link SourceError} naming the cause otherwise (not installed, exit code with its last stderr lines,
 * killed, silent for too long). Unsubscribing terminates it (SIGTERM, then SIGKILL), so no child outlives its
 * subscriber.
 */
export function runProcess(spec: ProcessSpec): Observable<ProcessOutput> {
  const name = spec.name ?? spec.command;
  return new Observable<ProcessOutput>((subscriber) => {
    const child = spawn(spec.command, [...spec.args], { stdio: ['ignore', 'pipe', 'pipe'], env: spec.env });
    const stderr = new LineSplitter(spec.keepForErrors);
    const silenceMs = spec.noDataTimeoutMs ?? 0;
    const watchdog = new Watchdog(silenceMs, () => {
      subscriber.error(new SourceError(`${name} produced no data for ${silenceMs} ms${tailSuffix(stderr)}`));
      terminate(child, spec.killGraceMs);
    });

    child.on('error', (error) => subscriber.error(spawnFailure(name, error)));
    child.stdout?.on('data', (data: Buffer) => {
      watchdog.kick();
      subscriber.next({ kind: 'stdout', data });
    });
    const { isProgress } = spec;
    child.stderr?.on('data', (chunk: Buffer) => {
      for (const line of stderr.push(chunk)) {
        if (isProgress?.(line)) watchdog.kick();
        else subscriber.next({ kind: 'stderr', line });
      }
    });
    // 'close' comes after the exit and after both pipes ended, so every byte has been delivered by then.
    child.on('close', (code, signal) => {
      watchdog.stop();
      for (const line of stderr.end()) subscriber.next({ kind: 'stderr', line });
      if (code === 0) subscriber.complete();
      else subscriber.error(new SourceError(exitMessage(name, code, signal, stderr.tail())));
    });

    return () => {
      watchdog.stop();
      terminate(child, spec.killGraceMs);
      child.stdout?.destroy();
      child.stderr?.destroy();
    };
  });
}

/** ": <last stderr lines>" or nothing, to end an error message. */
export const tailSuffix = (stderr: LineSplitter): string => (stderr.tail() ? `: ${stderr.tail()}` : '');
