import { Observable } from 'rxjs';
import type { FlowCredit } from '../core/flow-credit.js';

/**
 * An iterable (a recording being read, a list of events) as an Observable that takes its next item only when the
 * stages behind it have credit (see FlowCredit): RxJS's `from` would push an async iterable as fast as it reads,
 * whatever those stages can hold. Unsubscribing stops the iteration (its `finally` runs: files close).
 */
export function fromIterableWithCredit<T>(
  items: AsyncIterable<T> | Iterable<T>,
  credit: FlowCredit,
): Observable<T> {
  return new Observable<T>((subscriber) => {
    let stopped = false;
    const pull = async (): Promise<void> => {
      const iterator =
        Symbol.asyncIterator in items
          ? (items as AsyncIterable<T>)[Symbol.asyncIterator]()
          : (items as Iterable<T>)[Symbol.iterator]();
      try {
        for (;;) {
          const room = credit.ready();
          if (room) await room;
          if (stopped) return;
          const next = await iterator.next();
          if (next.done || stopped) return;
          subscriber.next(next.value);
        }
      } finally {
        if (stopped) await iterator.return?.();
      }
    };
    pull().then(
      () => subscriber.complete(),
      (error: unknown) => subscriber.error(error),
    );
    return () => {
      stopped = true;
    };
  });
}
