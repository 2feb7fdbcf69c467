import { createWriteStream, rmSync, type WriteStream } from 'node:fs';
import { type MonoTypeOperatorFunction, Observable } from 'rxjs';
import { InvalidOptionError } from '../core/errors.js';

/**
 * Opens a file for a command's output (`--out`, `--events-out`) and waits until it is open, so that a path that
 * cannot be written (no such folder, a folder, no permission) fails before any work, naming the option and the cause.
 */
export async function openOutputFile(path: string, option: string): Promise<WriteStream> {
  const stream = createWriteStream(path);
  await new Promise<void>((resolve, reject) => {
    stream.once('ready', () => resolve());
    stream.once('error', (error) =>
      reject(new InvalidOptionError(option, `cannot write ${path}: ${error.message}`)),
    );
  });
  return stream;
}

/** Closes and deletes an output file a command gives up on before writing to it (another output failed to open). */
export function discardOutputFile(stream: WriteStream): void {
  stream.destroy();
  rmSync(String(stream.path), { force: true });
}

/**
 * Fails the run when an output fails to take a write (disk full, a closed pipe), with the cause, instead of the
 * process dying on an unhandled 'error'.
 */
export function failOnWriteError<T>(
  output: NodeJS.WritableStream | undefined,
  name: string,
): MonoTypeOperatorFunction<T> {
  return (source$) =>
    output === undefined
      ? source$
      : new Observable<T>((subscriber) => {
          const fail = (error: Error) => subscriber.error(new Error(`writing ${name}: ${error.message}`));
          output.on('error', fail);
          const subscription = source$.subscribe(subscriber);
          return () => {
            output.off('error', fail);
            subscription.unsubscribe();
          };
        });
}
