import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { Observable } from 'rxjs';
import { z } from 'zod';
import { BadFrameError, InvalidOptionError, SourceError } from '../core/errors.js';
import { DEFAULT_EVENT_LIMITS, type SourceEvent } from '../core/events.js';
import { MAX_TIME_MICROS, type Micros, wallClockMicros } from '../core/time.js';
import type { DropCounter } from './drop-counter.js';

export interface TextSourceOptions {
  /** Stream of lines without their own `streamId`. */
  readonly streamId: string;
  /** An NDJSON file's path, or a readable stream of NDJSON (e.g. process.stdin). */
  readonly input: string | Readable;
  /** Counts skipped lines: `bad_json`, `bad_text_line`. */
  readonly drops: DropCounter;
  /** Clock for lines without a `time` (default: the system clock, i.e. stamped on arrival). */
  readonly clock?: () => Micros;
}

/** One NDJSON line: `{"text": "...", "time": <µs, optional>, "streamId": "<optional>"}`. */
const lineSchema = z.object({
  text: z.string(),
  time: z.number().int().min(0).max(MAX_TIME_MICROS).optional(),
  streamId: z.string().min(1).max(DEFAULT_EVENT_LIMITS.maxStreamIdLength).optional(),
});

/**
 * Text events from NDJSON, one object per line. A line's `time` (integer µs) is its originating time; lines without
 * one are stamped on arrival, which suits typing into stdin. `seq` counts each stream's lines from 0. Blank lines are
 * ignored; malformed lines are counted in `drops` and skipped, and the stream goes on. The source completes at the
 * end of the input. Unsubscribing closes a file it opened; a stream passed in is left open for its owner.
 */
export function ndjsonTextSource(options: TextSourceOptions): Observable<SourceEvent<'text'>> {
  if (typeof options.input !== 'string' && typeof options.input?.on !== 'function')
    throw new InvalidOptionError('input', 'must be a file path or a readable stream');
  const clock = options.clock ?? wallClockMicros;
  return new Observable<SourceEvent<'text'>>((subscriber) => {
    const owned = typeof options.input === 'string' ? createReadStream(options.input) : null;
    const input = owned ?? (options.input as Readable);
    const where = typeof options.input === 'string' ? options.input : 'input stream';
    const seqs = new Map<string, number>();
    let lineNumber = 0;
    const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
    // readline forwards the input's errors to the interface; without this listener they would be thrown.
    lines.on('error', (error: Error) =>
      subscriber.error(new SourceError(`cannot read text from ${where}: ${error.message}`, { cause: error })),
    );
    lines.on('line', (line) => {
      lineNumber++;
      if (line.trim() === '') return;
      const event = parseLine(line, lineNumber, where, options, clock, seqs);
      if (event instanceof BadFrameError) options.drops.record(event);
      else subscriber.next(event);
    });
    lines.on('close', () => subscriber.complete());
    return () => {
      lines.removeAllListeners('close');
      lines.close();
      owned?.destroy();
    };
  });
}

function parseLine(
  line: string,
  lineNumber: number,
  where: string,
  options: TextSourceOptions,
  clock: () => Micros,
  seqs: Map<string, number>,
): SourceEvent<'text'> | BadFrameError {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    return new BadFrameError(
      'bad_json',
      `${where} line ${lineNumber}: not JSON (${(error as Error).message})`,
    );
  }
  const parsed = lineSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') || 'line';
    return new BadFrameError(
      'bad_text_line',
      `${where} line ${lineNumber}: ${field}: ${issue?.message ?? 'invalid'}`,
    );
  }
  const streamId = parsed.data.streamId ?? options.streamId;
  const seq = seqs.get(streamId) ?? 0;
  seqs.set(streamId, seq + 1);
  return {
    streamId,
    modality: 'text',
    time: parsed.data.time ?? clock(),
    seq,
    payload: { text: parsed.data.text },
  };
}
