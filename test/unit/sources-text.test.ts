import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { lastValueFrom, toArray } from 'rxjs';
import { afterAll, describe, expect, it } from 'vitest';
import { SourceError } from '../../src/core/errors.js';
import { DropCounter } from '../../src/sources/drop-counter.js';
import { ndjsonTextSource } from '../../src/sources/text.js';

const dir = mkdtempSync(join(tmpdir(), 'braid-text-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('ndjsonTextSource', () => {
  it('reads text events from an NDJSON file, counting and skipping malformed lines', async () => {
    const path = join(dir, 'words.ndjson');
    writeFileSync(
      path,
      [
        '{"text":"hello there","time":1000}',
        '',
        'not json',
        '{"text":42,"time":2000}',
        '{"text":"negative","time":-5}',
        '{"text":"other stream","time":2500,"streamId":"b"}',
        '{"text":"général 日本","time":3000}\r',
        '{"text":"no newline at the end","time":4000}',
      ].join('\n'),
    );
    const drops = new DropCounter();
    const events = await lastValueFrom(
      ndjsonTextSource({ streamId: 'a', input: path, drops }).pipe(toArray()),
    );
    expect(events.map((e) => [e.streamId, e.seq, e.time, e.payload.text])).toEqual([
      ['a', 0, 1000, 'hello there'],
      ['b', 0, 2500, 'other stream'],
      ['a', 1, 3000, 'général 日本'],
      ['a', 2, 4000, 'no newline at the end'],
    ]);
    expect(drops.snapshot()).toEqual({ bad_json: 1, bad_text_line: 2 });
    expect(drops.lastError('bad_json')?.message).toMatch(/words\.ndjson line 3: not JSON/);
    expect(drops.lastError('bad_text_line')?.message).toMatch(/line 5: time: /);
  });

  it('unsubscribing leaves a stream passed in open and usable for its owner', async () => {
    const input = new PassThrough();
    const drops = new DropCounter();
    const source = ndjsonTextSource({ streamId: 'stdin', input, drops });
    const first = await new Promise<string>((resolve) => {
      const subscription = source.subscribe((e) => {
        subscription.unsubscribe();
        resolve(e.payload.text);
      });
      input.write('{"text":"before","time":1}\n');
    });
    expect(first).toBe('before');
    expect(input.destroyed).toBe(false);
    expect(input.writable).toBe(true);
    expect(input.readable).toBe(true);
    // The owner can go on using it: a new subscription reads what is written next.
    const later = lastValueFrom(ndjsonTextSource({ streamId: 'stdin', input, drops }).pipe(toArray()));
    input.end('{"text":"after","time":2}\n');
    expect((await later).map((e) => e.payload.text)).toEqual(['after']);
    expect(drops.total).toBe(0);
  });

  it('stamps lines without a time on arrival from a live stream', async () => {
    const input = new PassThrough();
    const drops = new DropCounter();
    let now = 7_000_000;
    const done = lastValueFrom(
      ndjsonTextSource({ streamId: 'stdin', input, drops, clock: () => now++ }).pipe(toArray()),
    );
    input.write('{"text":"first"}\n{"te');
    input.write('xt":"second"}\n');
    input.end();
    const events = await done;
    expect(events.map((e) => [e.time, e.payload.text])).toEqual([
      [7_000_000, 'first'],
      [7_000_001, 'second'],
    ]);
  });

  it('a file that cannot be read is a SourceError naming it', async () => {
    const drops = new DropCounter();
    const source = ndjsonTextSource({ streamId: 'a', input: join(dir, 'missing.ndjson'), drops });
    await expect(lastValueFrom(source)).rejects.toThrow(SourceError);
    await expect(lastValueFrom(source)).rejects.toThrow(/cannot read text from .*missing\.ndjson: ENOENT/);
  });
});
