import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { SPEECH_DIR, VIDEO_DIR } from '../../scripts/demo-data/media.js';
import { buildDataset } from '../../src/train/dataset.js';
import { requireTool } from '../helpers/system-tools.js';

const run = promisify(execFile);
const has = requireTool('sox') && requireTool('ffmpeg');
const media = existsSync(SPEECH_DIR) && existsSync(join(VIDEO_DIR, 'vtest.avi'));
if (!media && process.env['CI'] === 'true')
  throw new Error('asterisk-core-sounds-en-wav and opencv-doc are required on CI (see .ci/run)');

describe.skipIf(!has || !media)('npm run data (scripts/make-demo-data.ts)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'braid-demo-data-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('builds labelled sessions from real clips, with disjoint train and held-out media', async () => {
    const args = ['tsx', 'scripts/make-demo-data.ts', '--out', dir, '--cache', join(dir, 'cache')];
    await run('npx', [...args, '--train', '1', '--test', '1', '--seconds', '10', '--demo', ''], {
      timeout: 120_000,
    });
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    const { train, test } = manifest.splits;
    expect(train.prompts.filter((p: string) => test.prompts.includes(p))).toEqual([]);
    for (const [k, v] of (train.videos as { frames: [number, number] }[]).entries())
      expect(v.frames[1]).toBeLessThanOrEqual(test.videos[k].frames[0]);

    // Other session timelines (--seed) keep the media split: held-out prompts stay held out.
    const other = join(dir, 'seed-8');
    const script = ['tsx', 'scripts/make-demo-data.ts', '--out', other, '--cache', join(dir, 'cache')];
    await run('npx', [...script, '--seed', '8', '--train', '0', '--test', '0', '--demo', ''], {
      timeout: 120_000,
    });
    const otherManifest = JSON.parse(readFileSync(join(other, 'manifest.json'), 'utf8'));
    expect(otherManifest.seed).toBe(8);
    expect(otherManifest.splits).toEqual(manifest.splits);

    const dataset = await buildDataset([
      join(dir, 'train/session-000.mcap'),
      join(dir, 'test/session-000.mcap'),
    ]);
    expect(dataset.labels).toEqual(['speech', 'motion', 'typing', 'conversation']);
    // 10 s sessions: 21 windows on each stream's phase-shifted grid (20 if the grid sat on the epoch).
    expect(dataset.sequences.map((s) => s.windows.length)).toEqual([21, 21]);
    for (const s of dataset.sequences)
      for (let t = 0; t < s.windows.length; t++) {
        const text = s.x[t * dataset.inputWidth + dataset.inputWidth - 1] === 1;
        const video = s.x[t * dataset.inputWidth + dataset.inputWidth - 2] === 1;
        // A text event in the window means one in the 2 s before its end; no video means no motion.
        if (text) expect(s.y[t * 4 + 2]).toBe(1);
        if (!video) expect(s.y[t * 4 + 1]).toBe(0);
      }
  }, 150_000);
});
