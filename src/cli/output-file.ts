import { createWriteStream, lstatSync, rmSync, type WriteStream } from 'node:fs';
import { type MonoTypeOperatorFunction, Observable } from 'rxjs';
import { InvalidOptionError } from '../core/errors.js';

/**
 * A file a command writes its output to (`--out`, `--events-out`). Opened before any work, so that a path that cannot
 * be written (no such folder, a folder, no permission) fails first, naming the option and the cause; a write that
 * fails later (disk full) is kept until {@link finish} or {@link failOnWriteError} reports it — never an unhandled
 * 'error' event, never lost because it came after the run's last item.
 */
export class OutputFile {
  #error: Error | undefined;

  private constructor(
    readonly stream: WriteStream,
    readonly path: string,
    /** The file did not exist before: giving up removes it. A path that existed (a file, /dev/null) is left. */
    readonly created: boolean,
  ) {
    stream.on('error', (error) => {
      this.#error ??= error;
    });
  }

  /** `option` names it in a usage error, without dashes (`out`, `events-out`), as usage errors name options. */
  static async open(path: string, option: string): Promise<OutputFile> {
    const created = lstatSync(path, { throwIfNoEntry: false }) === undefined;
    const stream = createWriteStream(path);
    await new Promise<void>((resolve, reject) => {
      const fail = (error: Error) =>
        reject(new InvalidOptionError(option, `cannot write ${path}: ${error.message}`));
      stream.once('error', fail);
      stream.once('ready', () => {
        stream.off('error', fail);
        resolve();
      });
    });
    return new OutputFile(stream, path, created);
  }

  /** Closes the file, and removes it when this command created it and it is a regular file (the command gave up). */
  discard(): void {
    this.stream.destroy();
    if (this.created && lstatSync(this.path, { throwIfNoEntry: false })?.isFile())
      rmSync(this.path, { force: true });
  }

  /** Flushes and closes the file; rejects with the cause when any write failed, to the last one. */
  async finish(): Promise<void> {
    await new Promise<void>((resolve) => this.stream.end(() => resolve()));
    // end's callback sees an error too, but only one raised after it was called: the listener kept them all.
    if (this.#error) throw writeError(this.path, this.#error);
  }
}

const writeError = (name: string, error: Error) => new Error(`writing ${name}: ${error.message}`);

/**
 * Fails the run when an output fails to take a write (disk full, a closed pipe), with the cause, instead of the
 * process dying on an unhandled 'error'. An error after the run is {@link OutputFile.finish}'s to report.
 */
export function failOnWriteError<T>(
  output: NodeJS.WritableStream | undefined,
  name: string,
): MonoTypeOperatorFunction<T> {
  return (source$) =>
    output === undefined
      ? source$
      : new Observable<T>((subscriber) => {
          const fail = (error: Error) => subscriber.error(writeError(name, error));
          output.on('error', fail);
          const subscription = source$.subscribe(subscriber);
          return () => {
            output.off('error', fail);
            subscription.unsubscribe();
          };
        });
}
