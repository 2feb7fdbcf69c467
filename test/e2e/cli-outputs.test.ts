import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AnySourceEvent } from '../../src/core/events.js';
import { saveModel } from '../../src/model/model-io.js';
import { McapRecorder } from '../../src/record/recorder.js';
import { untrainedModel } from '../helpers/demo-pipeline.js';

/**
 * Where `braid replay` writes: an output that cannot be opened fails before any work, naming the option and leaving
 * no other output behind; one that fails mid-run ends the run with the cause; a reader that stops reading ends it
 * quietly — never a stack trace.
 */

let dir: string;
let recording: string;
let modelDir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'braid-cli-outputs-'));
  recording = join(dir, 'speech.mcap');
  modelDir = join(dir, 'model');
  await saveModel(untrainedModel(3), modelDir);
  const recorder = await McapRecorder.create(recording, { chunkBytes: 16 * 1024 });
  for (let i = 0; i < 1000; i++) {
    const samples = Int16Array.from({ length: 160 }, (_, k) =>
      Math.round(3000 * Math.sin((i * 160 + k) / 9)),
    );
    const event: AnySourceEvent = {
      streamId: 'mic',
      modality: 'audio',
      time: 1_700_000_000_000_000 + i * 10_000,
      seq: i,
      payload: { sampleRate: 16000, channels: 1, samples },
    };
    await recorder.write(event, event.time);
  }
  await recorder.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `braid replay` on the recording; `closeStdout` shuts the reading end of its stdout before it writes. */
function replay(
  args: string[],
  closeStdout = false,
  file = recording,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [
    '--import',
    'tsx',
    'src/cli/run.ts',
    'replay',
    file,
    '--model',
    modelDir,
    '--backend',
    'cpu-fused',
    '--speed',
    'max',
    '--log-level',
    'warn',
    ...args,
  ]);
  let stdout = '';
  let stderr = '';
  if (closeStdout) child.stdout.destroy();
  else child.stdout.on('data', (d) => (stdout += String(d)));
  child.stderr.on('data', (d) => (stderr += String(d)));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

const noStackTrace = (stderr: string) => expect(stderr).not.toMatch(/^\s+at |node:internal|Node\.js v/m);

describe('braid replay outputs', () => {
  it('writes every prediction to stdout', async () => {
    const { code, stdout, stderr } = await replay([]);
    expect(code).toBe(0);
    expect(stdout.trim().split('\n')).toHaveLength(21);
    noStackTrace(stderr);
  });

  it('ends quietly when stdout is closed under it (braid replay | head -1)', async () => {
    const { code, stderr } = await replay([], true);
    expect(code).toBe(0);
    expect(stderr).not.toMatch(/EPIPE/);
    noStackTrace(stderr);
  }, 30_000);

  it('finishes --events-out in full when stdout is closed under it (as tee -p)', async () => {
    const readAll = join(dir, 'events-read.ndjson');
    const closed = join(dir, 'events-closed.ndjson');
    const whole = await replay(['--events-out', readAll]);
    expect(whole.code).toBe(0);
    const expected = readFileSync(readAll, 'utf8');
    // Events through the recording and at its end (the stream's close), written after stdout's first refusal.
    expect(expected.trim().split('\n').length).toBeGreaterThan(2);
    const cut = await replay(['--events-out', closed, '--log-level', 'info'], true);
    expect(cut.code).toBe(0);
    expect(readFileSync(closed, 'utf8')).toBe(expected);
    expect(cut.stderr).toMatch(/stdout was closed; finishing/);
    noStackTrace(cut.stderr);
  }, 30_000);

  it('refuses an --out it cannot open, naming the option and the cause (exit 2)', async () => {
    const missing = await replay(['--out', join(dir, 'no-such-dir', 'p.ndjson')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/option "out": cannot write .*no-such-dir.*ENOENT/);
    noStackTrace(missing.stderr);
    const folder = await replay(['--out', dir]);
    expect(folder.code).toBe(2);
    expect(folder.stderr).toMatch(/option "out": cannot write .*EISDIR/);
  }, 30_000);

  it('a bad --events-out leaves no --out recording behind to block the retry', async () => {
    const out = join(dir, 'replayed.mcap');
    const failed = await replay(['--out', out, '--events-out', join(dir, 'no-such-dir', 'e.ndjson')]);
    expect(failed.code).toBe(2);
    expect(failed.stderr).toMatch(/option "events-out": cannot write .*ENOENT/);
    expect(existsSync(out)).toBe(false);
    const retried = await replay(['--out', out, '--events-out', join(dir, 'events.ndjson')]);
    expect(retried.code).toBe(0);
    expect(existsSync(out)).toBe(true);
  }, 30_000);

  it('leaves a path it did not create alone when it gives up: /dev/null stays a device', async () => {
    const failed = await replay(['--events-out', '/dev/null', '--out', join(dir, 'no-such-dir', 'p.ndjson')]);
    expect(failed.code).toBe(2);
    expect(failed.stderr).toMatch(/option "out": cannot write .*ENOENT/);
    expect(statSync('/dev/null').isCharacterDevice()).toBe(true);
    // A regular file that was there before is the user's: left (empty, as the open truncated it), not removed.
    const kept = join(dir, 'kept.ndjson');
    writeFileSync(kept, 'old\n');
    const again = await replay(['--events-out', kept, '--out', join(dir, 'no-such-dir', 'p.ndjson')]);
    expect(again.code).toBe(2);
    expect(existsSync(kept)).toBe(true);
  }, 30_000);

  it('refuses an MCAP --out it cannot create as a usage error naming the option, leaving no --events-out', async () => {
    const events = join(dir, 'never-events.ndjson');
    const exists = join(dir, 'exists.mcap');
    writeFileSync(exists, 'not mine to replace');
    const refused = await replay(['--out', exists, '--events-out', events]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(
      /option "out": .*exists\.mcap: cannot create the recording: the file exists \(--overwrite/,
    );
    expect(readFileSync(exists, 'utf8')).toBe('not mine to replace');
    expect(existsSync(events)).toBe(false);
    noStackTrace(refused.stderr);
  }, 30_000);

  it('warns of a file cut short once, though the summary and the replay both read it', async () => {
    const cut = join(dir, 'cut.mcap');
    writeFileSync(cut, readFileSync(recording).subarray(0, Math.floor(statSync(recording).size / 2)));
    const { code, stdout, stderr } = await replay(['--log-format', 'json'], false, cut);
    expect(code).toBe(0);
    expect(stdout.trim().split('\n').length).toBeGreaterThan(3);
    expect(stderr.match(/"code":"truncated"/g)).toHaveLength(1);
  }, 30_000);

  it('stops with the cause when the output fails mid-run (a full disk: /dev/full)', async () => {
    const { code, stderr } = await replay(['--out', '/dev/full']);
    expect(code).toBe(1);
    expect(stderr).toMatch(/braid: writing \/dev\/full: ENOSPC/);
    noStackTrace(stderr);
  }, 30_000);

  it('fails when the writes fail after the run has ended: a short replay onto a full disk', async () => {
    // A few lines: the disk's refusal comes back from the file system after the last prediction, as the run ends.
    const { code, stderr } = await replay(['--out', '/dev/full', '--to', '1500ms']);
    expect(code).toBe(1);
    expect(stderr).toMatch(/braid: writing \/dev\/full: ENOSPC/);
    noStackTrace(stderr);
  }, 30_000);
});
