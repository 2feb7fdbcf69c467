import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { SOUNDFONT } from '../../scripts/demo-data/distractors.js';
import { SPEECH_DIR, VIDEO_DIR } from '../../scripts/demo-data/media.js';
import { G722_DIR, sameWords, transcriptFile } from '../../scripts/demo-data/voices.js';
import { buildDataset } from '../../src/train/dataset.js';
import { requireTool } from '../helpers/system-tools.js';

const run = promisify(execFile);
const has =
  requireTool('sox') && requireTool('ffmpeg') && requireTool('espeak-ng') && requireTool('fluidsynth');
/** A file of each Debian package `npm run data` reads (see .ci/run). */
const PACKAGE_FILES = [
  SPEECH_DIR,
  join(VIDEO_DIR, 'vtest.avi'),
  join(VIDEO_DIR, 'building.jpg'),
  join(G722_DIR, 'activated.g722'),
  '/usr/share/asterisk/sounds/fr/activated.wav',
  '/usr/share/asterisk/sounds/it/activated.wav',
  '/usr/share/asterisk/sounds/es/agent-pass.wav',
  '/usr/share/asterisk/sounds/ru/activated.wav',
  transcriptFile('ru'),
  SOUNDFONT,
  '/usr/share/asterisk/moh',
  '/usr/share/sounds/freedesktop/stereo/bell.oga',
  '/usr/share/sounds/Oxygen-Sys-Question.ogg',
  '/usr/share/sounds/Yaru/stereo/bell.oga',
  '/usr/share/sounds/sound-icons/xylofon.wav',
  '/usr/share/games/frozen-bubble/snd/applause.ogg',
  '/usr/share/games/lincity-ng/sounds/Farm1.wav',
  '/usr/share/games/etr/music/race1-jt.ogg',
  '/usr/share/games/chromium-bsu/wav/boom.wav',
  '/usr/share/sounds/deepin/stereo/message.wav',
  '/usr/share/sounds/phone.wav',
  '/usr/share/games/lbreakout2/sounds/exp.wav',
  '/usr/share/games/pinball/tux/bump.wav',
  '/usr/share/games/singularity/music/Awakening.ogg',
  '/usr/share/planetblupi/music/music000.ogg',
  '/usr/share/hyperrogue/music/hr-savino-ivory.ogg',
  '/usr/share/games/warzone2100/music/albums/original_soundtrack/track1.opus',
  '/usr/share/asterisk/sounds/it_IT_f_Menardi/agent-pass.wav',
];
const missing = PACKAGE_FILES.filter((f) => !existsSync(f));
const media = missing.length === 0;
if (!media && process.env['CI'] === 'true')
  throw new Error(`npm run data's media are required on CI (see .ci/run); missing: ${missing.join(', ')}`);
if (!media) console.warn(`SKIPPING the npm run data test: missing ${missing.join(', ')} (see .ci/run)`);

describe.skipIf(!has || !media)('npm run data (scripts/make-demo-data.ts)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'braid-demo-data-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('builds labelled sessions from real clips, with disjoint train and held-out media', async () => {
    const args = ['tsx', 'scripts/make-demo-data.ts', '--out', dir, '--cache', join(dir, 'cache')];
    // The first run converts every voice, photo pan and distractor sound into the cache: about 6 minutes on a
    // loaded 2-core machine (341 s beside the other test files), so the limit only catches a hang.
    const flags = [
      '--train',
      '1',
      '--val',
      '1',
      '--val-voices',
      '1',
      '--test',
      '1',
      '--unseen-video',
      '1',
      '--seen-video',
      '1',
      '--seconds',
      '10',
      '--demo',
      join(dir, 'demo.mcap'),
    ];
    await run('npx', [...args, ...flags], { timeout: 900_000 });
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    const { train, test } = manifest.splits;
    expect(train.prompts.filter((p: string) => test.prompts.includes(p))).toEqual([]);
    type Video = { name: string; frames: [number, number] };
    const testVideos = new Map((test.videos as Video[]).map((v) => [v.name, v.frames]));
    for (const v of train.videos as Video[]) {
      const held = testVideos.get(v.name);
      // A video in both splits is split in time; the others (photo pans) are on one side only.
      if (held) expect(v.frames[1]).toBeLessThanOrEqual(held[0]);
    }
    expect((test.videos as Video[]).some((v) => v.name === 'pan:building')).toBe(true);
    expect((train.videos as Video[]).some((v) => v.name === 'pan:building')).toBe(false);
    // Held-out voices and distractor sources are never in training.
    expect(Object.keys(test.voices)).toContain('ru');
    expect(
      Object.keys(train.voices).filter((v) => v !== 'en' && v !== 'en-g722' && v in test.voices),
    ).toEqual([]);
    type Source = { kind: string; source: string; clips: number };
    const trainSources = new Set((train.distractors as Source[]).map((d) => d.source));
    expect((test.distractors as Source[]).filter((d) => trainSources.has(d.source))).toEqual([]);
    expect(new Set((train.distractors as Source[]).map((d) => d.kind)).size).toBeGreaterThanOrEqual(5);
    expect((test.distractors as Source[]).every((d) => d.clips > 0)).toBe(true);
    // Validation has training's voices and video but utterances training never hears (a share of each voice's
    // prompts, held back), and distractor sources of its own, in neither training nor the test.
    const { val } = manifest.splits;
    expect(Object.keys(val.voices)).toEqual(Object.keys(train.voices));
    const heard = (split: { utterances: string[] }) => new Set(split.utterances);
    const shared = (a: { utterances: string[] }, b: { utterances: string[] }) =>
      a.utterances.filter((u) => heard(b).has(u));
    expect(val.utterances.length).toBeGreaterThan(0.1 * train.utterances.length);
    expect(shared(val, train)).toEqual([]);
    expect(shared(test, train)).toEqual([]);
    expect(shared(test, val)).toEqual([]);
    // espeak-ng reads the same words alike whatever their case and punctuation, and whichever voice of its own reads
    // them: validation's synthetic voices read words none of training's does.
    const espeakWords = (split: { utterances: string[] }) =>
      split.utterances
        .filter((u) => u.startsWith('espeak/'))
        .map((u) => sameWords(u.slice(u.indexOf(':') + 1)));
    const trainWords = new Set(espeakWords(train));
    expect(espeakWords(val).filter((w) => trainWords.has(w))).toEqual([]);
    expect(espeakWords(val).length).toBeGreaterThan(100);
    expect(val.prompts.filter((p: string) => train.prompts.includes(p) || test.prompts.includes(p))).toEqual(
      [],
    );
    const testSources = new Set((test.distractors as Source[]).map((d) => d.source));
    expect(
      (val.distractors as Source[]).filter((d) => trainSources.has(d.source) || testSources.has(d.source)),
    ).toEqual([]);
    expect(new Set((val.distractors as Source[]).map((d) => d.kind))).toEqual(
      new Set(['music', 'field', 'system', 'effects']),
    );
    expect((val.distractors as Source[]).every((d) => d.clips > 0)).toBe(true);
    expect(existsSync(join(dir, 'val/session-000.mcap'))).toBe(true);
    // val-voices: speech only of voices no other split has, over validation's distractor sources.
    const valVoices = manifest.splits['val-voices'];
    expect(valVoices.prompts).toEqual([]);
    expect(Object.keys(valVoices.voices)).toContain('it-menardi');
    expect(
      Object.keys(valVoices.voices).filter((v) => v in train.voices || v in test.voices || v in val.voices),
    ).toEqual([]);
    expect(valVoices.distractors).toEqual(val.distractors);
    expect(existsSync(join(dir, 'val-voices/session-000.mcap'))).toBe(true);
    expect(manifest.splits['test-unseen-video'].videos.every((v: Video) => v.name.startsWith('pan:'))).toBe(
      true,
    );

    // Other session timelines (--seed) keep the media split: held-out prompts stay held out.
    const other = join(dir, 'seed-8');
    const script = ['tsx', 'scripts/make-demo-data.ts', '--out', other, '--cache', join(dir, 'cache')];
    await run(
      'npx',
      [
        ...script,
        '--seed',
        '8',
        '--train',
        '0',
        '--val',
        '0',
        '--val-voices',
        '0',
        '--test',
        '0',
        '--unseen-video',
        '0',
        '--seen-video',
        '0',
        '--demo',
        '',
      ],
      {
        timeout: 120_000,
      },
    );
    const otherManifest = JSON.parse(readFileSync(join(other, 'manifest.json'), 'utf8'));
    expect(otherManifest.seed).toBe(8);
    expect(otherManifest.splits).toEqual(manifest.splits);

    const files = [join(dir, 'train/session-000.mcap'), join(dir, 'test/session-000.mcap')];
    // The sessions carry the distractor label beside the four the model learns; the demo stream does not.
    // Each split's sessions have one label per distractor kind of the split, and one for the quiet ones (--fpr-on).
    const recorded = async (file: string) => (await buildDataset([file])).labels;
    const kinds = (labels: readonly string[]) => labels.filter((l) => l.startsWith('distractor_')).sort();
    const trainLabels = await recorded(files[0] as string);
    expect(trainLabels.slice(0, 5)).toEqual(['speech', 'motion', 'typing', 'conversation', 'distractor']);
    // And sensor_noise, where the camera adds noise.
    expect(trainLabels).toContain('sensor_noise');
    // And one per voice of the split: who speaks.
    expect(trainLabels).toEqual(
      expect.arrayContaining(['voice_en', 'voice_en-g722', 'voice_fr', 'voice_espeak-it-f4']),
    );
    expect(await recorded(files[1] as string)).toEqual(
      expect.arrayContaining(['voice_ru', 'voice_espeak-ru-f5']),
    );
    expect(trainLabels).not.toContain('voice_ru');
    expect(kinds(trainLabels)).toEqual(
      ['effects', 'music', 'noise', 'quiet', 'system', 'tones'].map((k) => `distractor_${k}`),
    );
    expect(kinds(await recorded(files[1] as string))).toEqual(
      ['effects', 'field', 'music', 'quiet', 'system'].map((k) => `distractor_${k}`),
    );
    // The committed demo stream is what the script writes: its seed and the held-out media alone, from a fresh cache.
    expect(readFileSync(join(dir, 'demo.mcap')).equals(readFileSync('streams/demo.mcap'))).toBe(true);
    expect((await buildDataset([join(dir, 'demo.mcap')])).labels).toEqual([
      'speech',
      'motion',
      'typing',
      'conversation',
    ]);
    const dataset = await buildDataset(files, {
      labels: ['speech', 'motion', 'typing', 'conversation'],
      auxLabels: ['distractor'],
    });
    expect(dataset.labels).toEqual(['speech', 'motion', 'typing', 'conversation']);
    // Distractors keep half a second from speech: no window ends in both.
    for (const s of dataset.sequences)
      for (let t = 0; t < s.windows.length; t++) if (s.aux?.[t] === 1) expect(s.y[t * 4]).toBe(0);
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
  }, 1_000_000);
});
