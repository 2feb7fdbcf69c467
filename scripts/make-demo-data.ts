// `npm run data`: builds the demo task's labelled sessions as MCAP recordings from real speech and video clips.
// Train and held-out sessions draw on disjoint clips, so held-out figures measure generalisation to unseen media.
import { mkdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Command } from 'commander';
import { mulberry32 } from '../src/model/weights.js';
import { shuffleInPlace } from '../src/train/shuffle.js';
import {
  type DistractorClip,
  loadDistractors,
  TEST_DISTRACTORS,
  TRAIN_DISTRACTORS,
  VALIDATION_DISTRACTORS,
} from './demo-data/distractors.js';
import { activeLevel } from './demo-data/levels.js';
import {
  loadSpeechPrompts,
  loadVideo,
  readTranscripts,
  type SpeechPrompt,
  type VideoSource,
} from './demo-data/media.js';
import { loadPan } from './demo-data/pans.js';
import {
  DEMO_LABELS,
  DISTRACTOR_LABEL,
  labelIntervals,
  type PlanInputs,
  planSession,
  SENSOR_NOISE_LABEL,
  type SessionPlan,
} from './demo-data/plan.js';
import { renderSession, type SplitMedia, writeSession } from './demo-data/render.js';
import {
  asteriskVoice,
  type EspeakVoice,
  loadEspeakVoice,
  loadG722Voice,
  loadPromptVoice,
  type PromptVoice,
  sameWords,
  transcriptFile,
} from './demo-data/voices.js';

/** Sessions start an hour apart from this µs epoch (a multiple of the 500 ms window, so windows align to it). */
const T0 = 1_700_000_000_000_000;
const HOUR = 3_600_000_000;
/** Clips with steady motion; tree.avi is left out: at 16×12 many of its consecutive frames are identical. */
const VIDEOS = ['vtest', 'Megamind'] as const;
/** The committed demo stream only shows vtest: Megamind.avi is an excerpt of a film trailer. */
const DEMO_VIDEOS = ['vtest'] as const;
const TRAIN_FRACTION_SPEECH = 0.75;
const TRAIN_FRACTION_VIDEO = 0.7;
/** Of each training voice's prompts, the share heard only in validation (data/val). */
const VALIDATION_FRACTION_SPEECH = 0.15;

/**
 * Other voices by split. Training: French (June), Italian (Carlo, a man) and Spanish (Allison) telephone prompts,
 * the English prompts as wideband G.722, six espeak-ng voices; a share of each one's utterances is held back for
 * validation (data/val). Held out, never in training: Russian (another speaker, another language) as telephone
 * prompts and as espeak-ng, and an espeak-ng Scottish English variant.
 */
const TRAIN_LANGUAGES = ['fr', 'it', 'es'] as const;
const TEST_LANGUAGES = ['ru'] as const;
/**
 * Validation voices no other split has, so a threshold can be chosen on speech as unheard as a user's (val-voices/):
 * another speaker's Italian telephone prompts (Debian asterisk-prompt-it-menardi-wav; the Colombian Spanish and
 * Armelle's French prompt packages would remove the es and fr transcripts training reads) and three espeak-ng
 * accents no other split uses.
 */
const VALIDATION_PROMPTS: readonly PromptVoice[] = [
  {
    voice: 'it-menardi',
    dir: '/usr/share/asterisk/sounds/it_IT_f_Menardi',
    lang: 'it',
    pkg: 'asterisk-prompt-it-menardi-wav',
  },
];
const VALIDATION_ESPEAK: readonly [voice: string, texts: string][] = [
  ['en-gb-x-gbcwmd+m5', 'en'],
  ['es-419+f2', 'es'],
  ['fr-be+m4', 'fr'],
];
const TRAIN_ESPEAK: readonly [voice: string, texts: string][] = [
  ['en-us+m3', 'en'],
  ['en-gb-x-rp+f2', 'en'],
  ['en-029+m7', 'en'],
  ['fr-fr+f3', 'fr'],
  ['es+m1', 'es'],
  ['it+f4', 'it'],
];
const TEST_ESPEAK: readonly [voice: string, texts: string][] = [
  ['ru+f5', 'ru'],
  ['en-gb-scotland+m4', 'en'],
];
/** Utterances per espeak-ng voice. */
const ESPEAK_COUNT = 40;
/**
 * A camera panning and zooming over OpenCV's sample photographs: eight for training; two of buildings (a modern
 * block, Leuven's old town) held out, so held-out video has a scene training never shows.
 */
const TRAIN_PHOTOS = [
  'baboon.jpg',
  'fruits.jpg',
  'home.jpg',
  'messi5.jpg',
  'starry_night.jpg',
  'butterfly.jpg',
  'stuff.jpg',
  'board.jpg',
];
const TEST_PHOTOS = ['building.jpg', 'leuvenA.jpg'];
/** Gaps between prompts in sessions with distractors: longer than the demo's, to leave room for them. */
const DISTRACTOR_GAPS: readonly [number, number] = [0.5, 7];

interface Options {
  out: string;
  train: number;
  val: number;
  valVoices: number;
  test: number;
  seconds: number;
  seed: number;
  mediaSeed: number;
  demo: string;
  demoSeconds: number;
  unseenVideo: number;
  seenVideo: number;
  cache: string;
}

interface Split {
  readonly media: SplitMedia;
  /** What the split holds, for the manifest. */
  readonly describe: {
    prompts: string[];
    videos: { name: string; frames: [number, number] }[];
    voices?: Record<string, number>;
    /** Every speech prompt by name: English bare, other voices `<voice>:<prompt>`, espeak-ng `espeak/<voice>:<text>`. */
    utterances?: string[];
    distractors?: { kind: string; source: string; clips: number; seconds: number }[];
  };
}

/**
 * Prompts split by file: a seeded shuffle, the first `keep` of them kept, the rest held; each part sorted by name.
 */
function splitPrompts(
  prompts: readonly SpeechPrompt[],
  keep: number,
  seed: number,
): [kept: SpeechPrompt[], held: SpeechPrompt[]] {
  const order = shuffleInPlace([...prompts], mulberry32(seed));
  const cut = Math.round(order.length * keep);
  const byName = (a: SpeechPrompt, b: SpeechPrompt) => a.name.localeCompare(b.name);
  return [order.slice(0, cut).sort(byName), order.slice(cut).sort(byName)];
}

/** A split of these English prompts and video frame ranges, and what it holds for the manifest. */
function makeSplit(
  part: readonly SpeechPrompt[],
  videos: readonly VideoSource[],
  ranges: readonly [number, number][],
): Split {
  return {
    media: {
      prompts: [...part],
      transcripts: part.map((p) => p.transcript),
      videos: videos.map((v, k) => ({
        name: v.name,
        frames: v.frames.slice(...(ranges[k] as [number, number])),
      })),
    },
    describe: {
      prompts: part.map((p) => p.name),
      videos: videos.map((v, k) => ({ name: v.name, frames: ranges[k] as [number, number] })),
    },
  };
}

/** Speech prompts split by file; each video split in time (first 70% train, last 30% held out). */
function splitMedia(
  prompts: readonly SpeechPrompt[],
  videos: readonly VideoSource[],
  seed: number,
): [Split, Split] {
  const parts = splitPrompts(prompts, TRAIN_FRACTION_SPEECH, seed);
  const cuts = videos.map((v) => Math.round(v.frames.length * TRAIN_FRACTION_VIDEO));
  return [
    makeSplit(
      parts[0],
      videos,
      cuts.map((c) => [0, c]),
    ),
    makeSplit(
      parts[1],
      videos,
      videos.map((v, k) => [cuts[k] as number, v.frames.length]),
    ),
  ];
}

/** A split's English prompts divided by {@link splitPrompts}, each part with all of the split's video. */
function divide(split: Split, keep: number, seed: number): [Split, Split] {
  const withPrompts = (part: SpeechPrompt[]): Split => ({
    media: { ...split.media, prompts: part, transcripts: part.map((p) => p.transcript) },
    describe: { ...split.describe, prompts: part.map((p) => p.name) },
  });
  const [kept, held] = splitPrompts(split.media.prompts, keep, seed);
  return [withPrompts(kept), withPrompts(held)];
}

/** Split media with the extra voices, videos and distractor sounds of one side, and what they add to the manifest. */
function extend(
  split: Split,
  voices: readonly SpeechPrompt[],
  videos: readonly VideoSource[],
  distractors: readonly DistractorClip[],
): Split {
  const prompts = [...split.media.prompts, ...voices];
  const counts: Record<string, number> = {};
  for (const p of prompts) counts[p.voice] = (counts[p.voice] ?? 0) + 1;
  const bySource = new Map<string, { kind: string; source: string; clips: number; seconds: number }>();
  for (const d of distractors) {
    const key = `${d.kind}\u0000${d.source}`;
    const entry = bySource.get(key) ?? { kind: d.kind, source: d.source, clips: 0, seconds: 0 };
    entry.clips++;
    entry.seconds = Number((entry.seconds + d.samples.length / 16_000).toFixed(1));
    bySource.set(key, entry);
  }
  return {
    media: { ...split.media, prompts, videos: [...split.media.videos, ...videos], distractors },
    describe: {
      ...split.describe,
      videos: [
        ...split.describe.videos,
        ...videos.map((v) => ({ name: v.name, frames: [0, v.frames.length] as [number, number] })),
      ],
      voices: counts,
      utterances: prompts.map((p) => p.name),
      distractors: [...bySource.values()],
    },
  };
}

/** What a session of these media may draw from; with distractors, voices and augmentation where the media have them. */
function planInputs(media: SplitMedia, seconds: number): PlanInputs {
  const base = {
    seconds,
    promptSamples: media.prompts.map((p) => p.samples.length),
    transcripts: media.transcripts.length,
    videoFrames: media.videos.map((v) => v.frames.length),
  };
  const clips = media.distractors;
  if (clips === undefined) return base;
  const voiceNames = [...new Set(media.prompts.map((p) => p.voice))];
  return {
    ...base,
    promptVoices: media.prompts.map((p) => voiceNames.indexOf(p.voice)),
    voiceNames,
    gapSeconds: DISTRACTOR_GAPS,
    distractors: {
      clips: clips.map((c) => ({ samples: c.samples.length, level: c.level, kind: c.kind })),
      promptLevels: media.prompts.map((p) => activeLevel(p.samples)),
    },
    augment: true,
  };
}

function onFraction(plan: SessionPlan): Record<string, number> {
  const intervals = labelIntervals(plan);
  const total = plan.seconds * 1_000_000;
  return Object.fromEntries(
    Object.entries(intervals).map(([l, set]) => [
      l,
      Number((set.reduce((a, [s, e]) => a + e - s, 0) / total).toFixed(3)),
    ]),
  );
}

async function buildSession(
  file: string,
  media: SplitMedia,
  seconds: number,
  seed: number,
  streamId: string,
  t0: number,
  metadata: Record<string, string>,
): Promise<Record<string, unknown>> {
  const random = mulberry32(seed);
  const plan = planSession(random, planInputs(media, seconds));
  const events = renderSession(plan, media, { streamId, t0, random });
  await writeSession(file, events, {
    ...metadata,
    streamId,
    seed: String(seed),
    labels: Object.keys(labelIntervals(plan)).join(','),
  });
  const bytes = (await stat(file)).size;
  const distractors = plan.distractors && {
    distractors: {
      count: plan.distractors.length,
      quiet: plan.distractors.filter((d) => d.quiet).length,
      kinds: countBy(plan.distractors.map((d) => d.kind)),
    },
    voices: countBy(plan.speech.map((s) => (media.prompts[s.prompt] as SpeechPrompt).voice)),
  };
  return {
    file,
    streamId,
    seed,
    events: events.length,
    bytes,
    labelOnFraction: onFraction(plan),
    ...distractors,
  };
}

function countBy(values: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of [...values].sort()) out[v] = (out[v] ?? 0) + 1;
  return out;
}

/** A language's texts for the espeak-ng voices of one side. */
type TextsOf = (lang: string) => Promise<readonly string[]>;

/** Texts of a side without prompts of its own in a language: English its split's, other languages all of theirs. */
const allTexts =
  (english: readonly string[]): TextsOf =>
  async (lang) =>
    lang === 'en' ? english : [...(await readTranscripts(transcriptFile(lang))).values()];

/** The espeak-ng voices of one side, each reading texts of its language. */
async function espeakVoices(
  voices: readonly [string, string][],
  textsOf: TextsOf,
  seed: number,
  cache: string,
): Promise<SpeechPrompt[]> {
  const out: SpeechPrompt[] = [];
  for (const [k, [voice, lang]] of voices.entries()) {
    const spec: EspeakVoice = { voice, texts: await textsOf(lang) };
    out.push(...(await loadEspeakVoice(spec, ESPEAK_COUNT, seed * 1000 + k, cache)));
  }
  return out;
}

async function main(options: Options): Promise<void> {
  const started = performance.now();
  await mkdir(options.out, { recursive: true });
  console.log('make-demo-data: preparing speech prompts (sox) and video clips (ffmpeg)...');
  const prompts = await loadSpeechPrompts(options.cache);
  const videos = await Promise.all(VIDEOS.map((v) => loadVideo(v, options.cache)));
  // The split has its own seed: new session timelines (--seed) must not move held-out media into training.
  const [baseTrain, baseTest] = splitMedia(prompts, videos, options.mediaSeed);
  console.log(
    `make-demo-data: ${prompts.length} prompts (${baseTrain.media.prompts.length} train / ${baseTest.media.prompts.length} held out), videos ${videos.map((v) => `${v.name} ${v.frames.length} frames`).join(', ')}`,
  );
  console.log(
    'make-demo-data: other voices (sox, ffmpeg, espeak-ng), photo pans (ffmpeg), distractor sounds...',
  );
  const voices = async (
    split: Split,
    prompts: readonly SpeechPrompt[],
    espeak: readonly [string, string][],
    textsOf: TextsOf,
    k: number,
  ) => [
    ...(await loadG722Voice(split.media.prompts, options.cache)),
    ...prompts,
    ...(await espeakVoices(espeak, textsOf, options.mediaSeed * 10 + k, options.cache)),
  ];
  const promptVoices = async (specs: readonly PromptVoice[]) =>
    (await Promise.all(specs.map((v) => loadPromptVoice(v, options.cache)))).flat();
  const pans = (photos: readonly string[], k: number) =>
    Promise.all(photos.map((p, i) => loadPan(p, options.mediaSeed * 1000 + k * 100 + i, options.cache)));
  // Validation speech training never hears: a share of each training voice's prompts (the English ones with their
  // G.722 twins), and training's espeak-ng voices reading texts training's never read; so a threshold chosen at
  // validation recall is chosen on unheard utterances, as the test's and a user's are.
  const keep = 1 - VALIDATION_FRACTION_SPEECH;
  const [trainPrompts, valPrompts] = divide(baseTrain, keep, options.mediaSeed + 1);
  const languages = await Promise.all(
    TRAIN_LANGUAGES.map((l) => loadPromptVoice(asteriskVoice(l), options.cache)),
  );
  const languageParts = languages.map((p, k) => splitPrompts(p, keep, options.mediaSeed + 2 + k));
  const trainLanguages = languageParts.flatMap(([kept]) => kept);
  const valLanguages = languageParts.flatMap(([, held]) => held);
  const textsIn =
    (english: readonly string[], prompts: readonly SpeechPrompt[]): TextsOf =>
    async (lang) =>
      lang === 'en' ? english : prompts.filter((p) => p.voice === lang).map((p) => p.transcript);
  const trainTexts = textsIn(trainPrompts.media.transcripts, trainLanguages);
  // Words any training espeak-ng voice reads, in any language ("IAX" is English and French): validation's read others.
  const heard = new Set(
    (await Promise.all([...new Set(TRAIN_ESPEAK.map(([, lang]) => lang))].map(trainTexts)))
      .flat()
      .map(sameWords),
  );
  const valPool = textsIn(valPrompts.media.transcripts, valLanguages);
  const valTexts: TextsOf = async (lang) => (await valPool(lang)).filter((t) => !heard.has(sameWords(t)));
  const trainVoices = await voices(trainPrompts, trainLanguages, TRAIN_ESPEAK, trainTexts, 0);
  const trainPans = await pans(TRAIN_PHOTOS, 0);
  const train = extend(
    trainPrompts,
    trainVoices,
    trainPans,
    await loadDistractors(TRAIN_DISTRACTORS, options.cache),
  );
  // Validation: the held-back speech, training's video, distractor sources of its own (neither training's nor the
  // test's), so a choice made on it (--validation-data) is made on unheard speech and sounds without the test.
  const val = extend(
    valPrompts,
    await voices(valPrompts, valLanguages, TRAIN_ESPEAK, valTexts, 3),
    trainPans,
    await loadDistractors(VALIDATION_DISTRACTORS, options.cache),
  );
  // Validation of the speech side: voices no other split has (no prompt of training's), over validation's sounds.
  const noPrompts: Split = {
    media: { ...baseTrain.media, prompts: [] },
    describe: { ...baseTrain.describe, prompts: [] },
  };
  const valVoices = extend(
    noPrompts,
    await voices(
      noPrompts,
      await promptVoices(VALIDATION_PROMPTS),
      VALIDATION_ESPEAK,
      allTexts(baseTrain.media.transcripts),
      2,
    ),
    trainPans,
    val.media.distractors ?? [],
  );
  const test = extend(
    baseTest,
    await voices(
      baseTest,
      await promptVoices(TEST_LANGUAGES.map(asteriskVoice)),
      TEST_ESPEAK,
      allTexts(baseTest.media.transcripts),
      1,
    ),
    await pans(TEST_PHOTOS, 1),
    await loadDistractors(TEST_DISTRACTORS, options.cache),
  );
  // Held-out sessions whose video shows only the clips training never saw (the building pans): motion on them alone.
  const unseenVideo: Split = {
    media: {
      ...test.media,
      videos: test.media.videos.filter((v) =>
        TEST_PHOTOS.some((p) => v.name === `pan:${p.replace(/\.[^.]+$/, '')}`),
      ),
    },
    describe: {
      ...test.describe,
      videos: test.describe.videos.filter((v) => v.name.startsWith('pan:')),
    },
  };
  for (const [name, split] of [
    ['train', train],
    ['val', val],
    ['val-voices', valVoices],
    ['test', test],
  ] as const)
    console.log(
      `make-demo-data: ${name}: voices ${Object.entries(split.describe.voices ?? {})
        .map(([v, n]) => `${v} ${n}`)
        .join(', ')}; distractors ${(split.describe.distractors ?? [])
        .map((d) => `${d.kind}/${d.source} ${d.clips}`)
        .join(', ')}`,
    );
  const sessions: Record<string, unknown>[] = [];
  const common = {
    generator: 'scripts/make-demo-data.ts',
    dataSeed: String(options.seed),
    mediaSeed: String(options.mediaSeed),
  };
  // And whose video shows only held-out parts of the videos training saw parts of: the same figure for comparison.
  const seenVideo: Split = {
    media: {
      ...test.media,
      videos: test.media.videos.filter((v) => (VIDEOS as readonly string[]).includes(v.name)),
    },
    describe: {
      ...test.describe,
      videos: test.describe.videos.filter((v) => (VIDEOS as readonly string[]).includes(v.name)),
    },
  };
  for (const [name, split, count, offset] of [
    ['train', train, options.train, 0],
    ['val', val, options.val, 50_000],
    ['val-voices', valVoices, options.valVoices, 60_000],
    ['test', test, options.test, 10_000],
    ['test-unseen-video', unseenVideo, options.unseenVideo, 30_000],
    ['test-seen-video', seenVideo, options.seenVideo, 40_000],
  ] as const) {
    if (count === 0) continue;
    const dir = path.join(options.out, name);
    await mkdir(dir, { recursive: true });
    for (let i = 0; i < count; i++) {
      const file = path.join(dir, `session-${String(i).padStart(3, '0')}.mcap`);
      const seed = options.seed * 100_003 + offset + i;
      const t0 = T0 + (offset + i) * HOUR;
      sessions.push(
        await buildSession(file, split.media, options.seconds, seed, `${name}-${i}`, t0, {
          ...common,
          split: name,
        }),
      );
      console.log(`make-demo-data: wrote ${file}`);
    }
  }
  if (options.demo) {
    await mkdir(path.dirname(options.demo), { recursive: true });
    // The demo stream is built as before the extra voices, videos and distractors: English prompts over the noise bed.
    const media = {
      ...baseTest.media,
      videos: baseTest.media.videos.filter((v) => (DEMO_VIDEOS as readonly string[]).includes(v.name)),
    };
    const seed = options.seed * 100_003 + 20_000;
    sessions.push(
      await buildSession(options.demo, media, options.demoSeconds, seed, 'demo', T0 + 20_000 * HOUR, {
        ...common,
        split: 'test',
      }),
    );
    console.log(`make-demo-data: wrote ${options.demo}`);
  }
  const manifest = {
    seed: options.seed,
    mediaSeed: options.mediaSeed,
    seconds: options.seconds,
    labels: DEMO_LABELS,
    auxLabels: [
      DISTRACTOR_LABEL,
      `${DISTRACTOR_LABEL}_<kind>`,
      `${DISTRACTOR_LABEL}_quiet`,
      SENSOR_NOISE_LABEL,
      'voice_<voice>',
    ],
    splits: {
      train: train.describe,
      val: val.describe,
      'val-voices': valVoices.describe,
      test: test.describe,
      'test-unseen-video': unseenVideo.describe,
      'test-seen-video': seenVideo.describe,
    },
    sessions,
  };
  await writeFile(path.join(options.out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  console.log(`make-demo-data: done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

const int =
  (name: string) =>
  (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0)
      throw new Error(`--${name} must be a whole number >= 0, got "${value}"`);
    return n;
  };

const program = new Command('make-demo-data')
  .description('Build labelled demo sessions (MCAP) from Debian speech prompts and OpenCV sample clips')
  .option('--out <dir>', 'where train/ and test/ sessions go', 'data')
  .option('--train <n>', 'training sessions', int('train'), 720)
  .option(
    '--val <n>',
    "validation sessions: training's voices and video, utterances held back from training, distractor sounds of their own (val/)",
    int('val'),
    60,
  )
  .option(
    '--val-voices <n>',
    "validation sessions whose speech is only voices no other split has, over validation's sounds (val-voices/)",
    int('val-voices'),
    60,
  )
  .option('--test <n>', 'held-out sessions', int('test'), 60)
  .option('--seconds <s>', 'length of each session', int('seconds'), 60)
  .option('--seed <n>', 'seed for the session timelines', int('seed'), 7)
  .option(
    '--media-seed <n>',
    'seed for the train / held-out split of the speech prompts (keep it to keep held-out media held out)',
    int('media-seed'),
    7,
  )
  .option(
    '--demo <file>',
    'also write one held-out session here for `npm start` ("" for none)',
    'streams/demo.mcap',
  )
  .option('--demo-seconds <s>', 'length of the demo session', int('demo-seconds'), 60)
  .option(
    '--unseen-video <n>',
    'held-out sessions whose video is only the clips training never shows (test-unseen-video/)',
    int('unseen-video'),
    5,
  )
  .option(
    '--seen-video <n>',
    "held-out sessions whose video is only the held-out parts of training's videos (test-seen-video/)",
    int('seen-video'),
    5,
  )
  .option('--cache <dir>', 'converted clips are cached here', 'data/cache')
  .action(async (options: Options) => main(options));

program.parseAsync(process.argv).catch((error: unknown) => {
  console.error(`make-demo-data: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
