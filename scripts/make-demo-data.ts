// `npm run data`: builds the demo task's labelled sessions as MCAP recordings from real speech and video clips.
// Train and held-out sessions draw on disjoint clips, so held-out figures measure generalisation to unseen media.
import { mkdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Command } from 'commander';
import { mulberry32 } from '../src/model/weights.js';
import { shuffleInPlace } from '../src/train/shuffle.js';
import { loadSpeechPrompts, loadVideo, type SpeechPrompt, type VideoSource } from './demo-data/media.js';
import { DEMO_LABELS, labelIntervals, planSession, type SessionPlan } from './demo-data/plan.js';
import { renderSession, type SplitMedia, writeSession } from './demo-data/render.js';

/** Sessions start an hour apart from this µs epoch (a multiple of the 500 ms window, so windows align to it). */
const T0 = 1_700_000_000_000_000;
const HOUR = 3_600_000_000;
/** Clips with steady motion; tree.avi is left out: at 16×12 many of its consecutive frames are identical. */
const VIDEOS = ['vtest', 'Megamind'] as const;
/** The committed demo stream only shows vtest: Megamind.avi is an excerpt of a film trailer. */
const DEMO_VIDEOS = ['vtest'] as const;
const TRAIN_FRACTION_SPEECH = 0.75;
const TRAIN_FRACTION_VIDEO = 0.7;

interface Options {
  out: string;
  train: number;
  test: number;
  seconds: number;
  seed: number;
  mediaSeed: number;
  demo: string;
  demoSeconds: number;
  cache: string;
}

interface Split {
  readonly media: SplitMedia;
  /** What the split holds, for the manifest. */
  readonly describe: { prompts: string[]; videos: { name: string; frames: [number, number] }[] };
}

/** Speech prompts split by file; each video split in time (first 70% train, last 30% held out). */
function splitMedia(
  prompts: readonly SpeechPrompt[],
  videos: readonly VideoSource[],
  seed: number,
): [Split, Split] {
  const order = shuffleInPlace([...prompts], mulberry32(seed));
  const cut = Math.round(order.length * TRAIN_FRACTION_SPEECH);
  const parts = [order.slice(0, cut), order.slice(cut)].map((p) =>
    p.sort((a, b) => a.name.localeCompare(b.name)),
  );
  const make = (part: SpeechPrompt[], i: number): Split => {
    const ranges = videos.map((v) => {
      const split = Math.round(v.frames.length * TRAIN_FRACTION_VIDEO);
      return i === 0 ? ([0, split] as [number, number]) : ([split, v.frames.length] as [number, number]);
    });
    return {
      media: {
        prompts: part,
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
  };
  return [make(parts[0] as SpeechPrompt[], 0), make(parts[1] as SpeechPrompt[], 1)];
}

function onFraction(plan: SessionPlan): Record<string, number> {
  const intervals = labelIntervals(plan);
  const total = plan.seconds * 1_000_000;
  return Object.fromEntries(
    DEMO_LABELS.map((l) => [
      l,
      Number((intervals[l].reduce((a, [s, e]) => a + e - s, 0) / total).toFixed(3)),
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
  const plan = planSession(random, {
    seconds,
    promptSamples: media.prompts.map((p) => p.samples.length),
    transcripts: media.transcripts.length,
    videoFrames: media.videos.map((v) => v.frames.length),
  });
  const events = renderSession(plan, media, { streamId, t0, random });
  await writeSession(file, events, {
    ...metadata,
    streamId,
    seed: String(seed),
    labels: DEMO_LABELS.join(','),
  });
  const bytes = (await stat(file)).size;
  return { file, streamId, seed, events: events.length, bytes, labelOnFraction: onFraction(plan) };
}

async function main(options: Options): Promise<void> {
  const started = performance.now();
  console.log('make-demo-data: preparing speech prompts (sox) and video clips (ffmpeg)...');
  const prompts = await loadSpeechPrompts(options.cache);
  const videos = await Promise.all(VIDEOS.map((v) => loadVideo(v, options.cache)));
  // The split has its own seed: new session timelines (--seed) must not move held-out media into training.
  const [train, test] = splitMedia(prompts, videos, options.mediaSeed);
  console.log(
    `make-demo-data: ${prompts.length} prompts (${train.media.prompts.length} train / ${test.media.prompts.length} held out), videos ${videos.map((v) => `${v.name} ${v.frames.length} frames`).join(', ')}`,
  );
  const sessions: Record<string, unknown>[] = [];
  const common = {
    generator: 'scripts/make-demo-data.ts',
    dataSeed: String(options.seed),
    mediaSeed: String(options.mediaSeed),
  };
  for (const [name, split, count, offset] of [
    ['train', train, options.train, 0],
    ['test', test, options.test, 10_000],
  ] as const) {
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
    const media = {
      ...test.media,
      videos: test.media.videos.filter((v) => (DEMO_VIDEOS as readonly string[]).includes(v.name)),
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
    splits: { train: train.describe, test: test.describe },
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
  .option('--train <n>', 'training sessions', int('train'), 40)
  .option('--test <n>', 'held-out sessions', int('test'), 10)
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
  .option('--cache <dir>', 'converted clips are cached here', 'data/cache')
  .action(async (options: Options) => main(options));

program.parseAsync(process.argv).catch((error: unknown) => {
  console.error(`make-demo-data: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
