// Non-speech sounds for the demo sessions' gaps (label speech = 0, distractor = 1): real recordings from Debian
// packages, music rendered by fluidsynth from MIDI written here, and tones, beeps, DTMF and noise made by sox.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, realpath, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { mulberry32 } from '../../src/model/weights.js';
import { activeLevel } from './levels.js';
import { limited } from './limited.js';
import { randomPiece } from './midi.js';
import { SAMPLE_RATE } from './plan.js';

const run = promisify(execFile);

/** Debian fluid-soundfont-gm: the General MIDI soundfont fluidsynth renders with. */
export const SOUNDFONT = '/usr/share/sounds/sf2/FluidR3_GM.sf2';

export interface DistractorClip {
  /** What kind of sound it is: music, tones, noise, system, effects, field. */
  readonly kind: string;
  /** Where it comes from: a Debian package, or the tool that made it. */
  readonly source: string;
  readonly name: string;
  /** 16 kHz mono PCM16, silence trimmed at both ends. */
  readonly samples: Int16Array;
  /** Active RMS level (levels.ts), linear full scale. */
  readonly level: number;
}

/** A group of clips of one kind from one source; a split takes whole sources, so held-out sources are never heard. */
export interface DistractorSource {
  readonly kind: string;
  readonly source: string;
  /** The clips' names and how to make each one's 16 kHz mono PCM16 file at `out`. */
  list(): Promise<{ name: string; make: (out: string) => Promise<void> }[]>;
}

const RAW = ['-t', 'raw', '-r', String(SAMPLE_RATE), '-b', '16', '-c', '1', '-e', 'signed-integer'];
/** sox effects: drop leading and trailing silence (as the speech prompts are trimmed), then resample to 16 kHz. */
const TRIM = ['silence', '1', '0.02', '1%', 'reverse', 'silence', '1', '0.02', '1%', 'reverse'];
const RATE = ['rate', '-v', String(SAMPLE_RATE)];

/**
 * A sound file decoded by sox (WAV, Ogg Vorbis; Opus, which sox cannot read, by ffmpeg to WAV first), mixed to mono;
 * `window` = [start, length] s to keep of a long one.
 */
const soxFile =
  (file: string, window?: readonly [number, number]) =>
  async (out: string): Promise<void> => {
    const isOgg = /\.(ogg|oga)$/.test(file);
    const wav = /\.opus$/.test(file) ? `${out}.wav` : undefined;
    if (wav !== undefined) await run('ffmpeg', ['-v', 'error', '-y', '-i', file, '-ac', '1', wav]);
    await run('sox', [
      '-R',
      ...(isOgg ? ['-t', 'ogg'] : []),
      wav ?? file,
      ...RAW,
      out,
      ...(window ? ['trim', String(window[0]), String(window[1])] : []),
      ...TRIM,
      ...RATE,
    ]);
    if (wav !== undefined) await rm(wav);
  };

/** Files under `dir` matching `pattern`, by real path (theme packages link one sound under several names), sorted. */
async function files(dir: string, pattern: RegExp, exclude: RegExp = /^$/): Promise<string[]> {
  if (!existsSync(dir))
    throw new Error(`${dir} is missing: install the Debian package that holds it (see .ci/run)`);
  const names = (await readdir(dir)).filter((n) => pattern.test(n) && !exclude.test(n)).sort();
  const seen = new Set<string>();
  const out: string[] = [];
  for (const n of names) {
    const real = await realpath(path.join(dir, n)).catch(() => undefined);
    if (real === undefined || seen.has(real)) continue;
    seen.add(real);
    out.push(path.join(dir, n));
  }
  return out;
}

const fromFiles = (
  kind: string,
  source: string,
  dir: string,
  pattern: RegExp,
  exclude?: RegExp,
  window?: readonly [number, number],
): DistractorSource => ({
  kind,
  source,
  list: async () =>
    (await files(dir, pattern, exclude)).map((f) => ({
      name: path.basename(f).replace(/\.[^.]+$/, ''),
      make: soxFile(f, window),
    })),
});

/** sox synth effects, each an argument list after `sox -n <raw out>`; 40 tones, beeps, sweeps, DTMF, ring tones. */
function toneRecipes(): { name: string; args: string[] }[] {
  const random = mulberry32(20_251_201);
  const between = (lo: number, hi: number): number => Math.round(lo + (hi - lo) * random());
  const waves = ['sine', 'square', 'triangle', 'sawtooth'];
  const out: { name: string; args: string[] }[] = [];
  for (let i = 0; i < 10; i++) {
    // Beep patterns: a tone switched on and off by a square-wave tremolo.
    const f = between(300, 3500);
    const wave = waves[i % waves.length] as string;
    out.push({
      name: `beeps-${wave}-${f}`,
      args: ['synth', String(between(2, 5)), wave, String(f), 'tremolo', String(between(1, 8)), '100'],
    });
  }
  for (let i = 0; i < 8; i++) {
    const a = between(100, 1000);
    const b = between(1000, 6000);
    const [lo, hi] = i % 2 === 0 ? [a, b] : [b, a];
    out.push({
      name: `sweep-${lo}-${hi}`,
      args: ['synth', String(between(1, 4)), waves[i % 4] as string, `${lo}-${hi}`],
    });
  }
  const dtmf: Record<string, [number, number]> = {
    '1': [697, 1209],
    '5': [770, 1336],
    '9': [852, 1477],
    '0': [941, 1336],
    '#': [941, 1477],
    '3': [697, 1477],
  };
  for (const [key, [lo, hi]] of Object.entries(dtmf))
    out.push({
      name: `dtmf-${key === '#' ? 'hash' : key}`,
      args: ['synth', '3', 'sine', String(lo), 'sine', String(hi), 'remix', '-', 'tremolo', '4', '100'],
    });
  for (let i = 0; i < 8; i++) {
    // Steady tones and two-tone chords, some warbling like a phone ringer.
    const f = between(200, 4000);
    const g = between(200, 4000);
    out.push({
      name: `tone-${f}-${g}`,
      args: [
        'synth',
        String(between(1, 4)),
        waves[i % 4] as string,
        String(f),
        'sine',
        String(g),
        'remix',
        '-',
        ...(i % 2 === 0 ? ['tremolo', String(between(10, 25)), '60'] : []),
      ],
    });
  }
  for (let i = 0; i < 8; i++) {
    // Plucked notes, like a marimba or a doorbell.
    const f = between(150, 1500);
    out.push({ name: `pluck-${f}`, args: ['synth', '1.5', 'pluck', String(f), 'fade', '0', '1.5', '1.4'] });
  }
  return out;
}

/** Wideband noise of several colours, steady and in bursts (sox synth). */
function noiseRecipes(): { name: string; args: string[] }[] {
  const out: { name: string; args: string[] }[] = [];
  for (const colour of ['whitenoise', 'pinknoise', 'brownnoise', 'tpdfnoise'])
    for (const [shape, extra] of [
      ['steady', []],
      ['bursts', ['tremolo', '3', '100']],
      ['band', ['sinc', '1500-6000']],
    ] as const)
      out.push({ name: `${colour}-${shape}`, args: ['synth', '3', colour, ...extra] });
  return out;
}

const synth = (
  kind: string,
  source: string,
  recipes: () => { name: string; args: string[] }[],
): DistractorSource => ({
  kind,
  source,
  list: async () =>
    recipes().map((r) => ({
      name: r.name,
      // Synthesised at 16 kHz already; normalised so the effects' own gain (a sum of two sines) never clips.
      make: async (out: string) => {
        await run('sox', ['-R', '-n', ...RAW, out, ...r.args, 'gain', '-n', '-3']);
      },
    })),
});

/** 24 pieces of 10 s written as MIDI and rendered with the GM soundfont; the release tail is cut at 10 s. */
const fluidsynthMusic: DistractorSource = {
  kind: 'music',
  source: 'fluidsynth + fluid-soundfont-gm',
  list: async () => {
    if (!existsSync(SOUNDFONT))
      throw new Error(`${SOUNDFONT} is missing: install fluidsynth and fluid-soundfont-gm (see .ci/run)`);
    return Array.from({ length: 24 }, (_, i) => ({
      name: `midi-${String(i).padStart(2, '0')}`,
      make: async (out: string) => {
        const mid = `${out}.mid`;
        const wav = `${out}.wav`;
        await writeFile(mid, randomPiece(mulberry32(9_000 + i), 10));
        await run('fluidsynth', [
          '-ni',
          '-q',
          '-r',
          String(SAMPLE_RATE),
          '-g',
          '0.6',
          '-T',
          'wav',
          '-F',
          wav,
          SOUNDFONT,
          mid,
        ]);
        await run('sox', ['-R', wav, ...RAW, out, 'trim', '0', '10', ...TRIM]);
        await rm(mid);
        await rm(wav);
      },
    }));
  },
};

/**
 * The same clips through a telephone channel (sox resamples to 8 kHz and back): half the training voices are 8 kHz
 * telephone prompts, and with every distractor wideband a model learnt "band-limited means speech" and called
 * recorded music on hold (8 kHz) speech in 36–46 % of its windows.
 */
const telephoneBand = (source: DistractorSource): DistractorSource => ({
  kind: source.kind,
  source: `${source.source}, telephone band`,
  list: async () =>
    (await source.list()).map((clip) => ({
      name: clip.name,
      make: async (out: string) => {
        const wide = `${out}.wide`;
        await clip.make(wide);
        await run('sox', ['-R', ...RAW, wide, ...RAW, out, 'rate', '-v', '8000', ...RATE]);
        await rm(wide);
      },
    })),
});

/** Sounds of the freedesktop theme; the audio-channel-* ones say "front left" etc. — speech, left out. */
const SPOKEN_FREEDESKTOP = /^audio-channel-/;
/** frozen-bubble's voice samples and snoring, left out: a distractor must not be a human voice. */
const SPOKEN_FROZEN_BUBBLE = /^(hurry|noh|chatted|lose|snore)\./;
/** lincity-ng sounds of places with people (schools, markets, crowds, housing), left out: they may hold voices. */
const PEOPLE_LINCITY = /^(School|University|Residential|Shanty|Market|SportsCroud|Health|Commune|Monument\d)/;

/**
 * Training sources: synthetic music, tones, noise; the freedesktop and Oxygen system sounds; frozen-bubble's game
 * effects (applause, typewriter, bubbles) and recorded game music (frozen-bubble, Drascula, Advanced Strategic
 * Command).
 */
const WIDEBAND_TRAIN_DISTRACTORS: readonly DistractorSource[] = [
  fluidsynthMusic,
  synth('tones', 'sox synth (tones, beeps, sweeps, DTMF, plucks)', toneRecipes),
  synth('noise', 'sox synth (white, pink, brown noise, bursts, band-passed)', noiseRecipes),
  fromFiles(
    'system',
    'sound-theme-freedesktop',
    '/usr/share/sounds/freedesktop/stereo',
    /\.oga$/,
    SPOKEN_FREEDESKTOP,
  ),
  fromFiles('system', 'oxygen-sounds', '/usr/share/sounds', /^Oxygen-.*\.ogg$/),
  fromFiles(
    'effects',
    'frozen-bubble-data',
    '/usr/share/games/frozen-bubble/snd',
    /\.ogg$/,
    new RegExp(`zik|${SPOKEN_FROZEN_BUBBLE.source}`),
  ),
  fromFiles(
    'music',
    'frozen-bubble-data (game music)',
    '/usr/share/games/frozen-bubble/snd',
    /zik.*\.ogg$/,
    undefined,
    [5, 60],
  ),
  // Recorded game soundtracks (orchestral, rock, ambient), a minute of each from its 10th second.
  fromFiles(
    'music',
    'drascula-music',
    '/usr/share/scummvm/drascula/audio',
    /^track\d+\.ogg$/,
    undefined,
    [10, 60],
  ),
  fromFiles('music', 'asc-music', '/usr/share/games/asc/music', /\.mp3$/, undefined, [10, 60]),
  // More recorded styles (2026-12-07): music on hold, the held-out music, was 35 of the 59 distractor windows the
  // committed ensemble called speech. Ambient and piano (Endgame: Singularity), light orchestral (Planet Blupi),
  // world and chiptune-like pieces (HyperRogue), electronic soundtracks (Warzone 2100's three albums).
  fromFiles(
    'music',
    'singularity-music',
    '/usr/share/games/singularity/music',
    /\.ogg$/,
    undefined,
    [10, 60],
  ),
  fromFiles('music', 'planetblupi-music-ogg', '/usr/share/planetblupi/music', /\.ogg$/, undefined, [10, 60]),
  fromFiles('music', 'hyperrogue-music', '/usr/share/hyperrogue/music', /\.ogg$/, undefined, [10, 60]),
  ...['aftermath_soundtrack', 'legacy_soundtrack', 'original_soundtrack'].map((album) =>
    fromFiles(
      'music',
      `warzone2100-music (${album})`,
      `/usr/share/games/warzone2100/music/albums/${album}`,
      /\.(ogg|opus)$/,
      undefined,
      [10, 60],
    ),
  ),
];

/** Every training source twice: as it is, and through a telephone channel (kinds keep their share). */
export const TRAIN_DISTRACTORS: readonly DistractorSource[] = [
  ...WIDEBAND_TRAIN_DISTRACTORS,
  ...WIDEBAND_TRAIN_DISTRACTORS.map(telephoneBand),
];

/**
 * Held-out sources, never in training: recorded music on hold (8 kHz), field recordings of machines, vehicles, farm
 * animals, water and fire (lincity-ng), the Yaru system sounds and the sound-icons samples (instruments, a canary).
 */
export const TEST_DISTRACTORS: readonly DistractorSource[] = [
  fromFiles('music', 'asterisk-moh-opsound-wav', '/usr/share/asterisk/moh', /\.wav$/, undefined, [20, 60]),
  fromFiles('field', 'lincity-ng-data', '/usr/share/games/lincity-ng/sounds', /\.wav$/, PEOPLE_LINCITY),
  fromFiles('system', 'yaru-theme-sound', '/usr/share/sounds/Yaru/stereo', /\.oga$/),
  fromFiles('effects', 'sound-icons', '/usr/share/sounds/sound-icons', /\.wav$/, /^prompt\./),
];

/**
 * lbreakout2's spoken cheers ("excellent", "very good", "damn"...), and the bonus sounds that may be a word ("speed
 * up", "freeze"), left out: a distractor must not be a voice.
 */
const SPOKEN_LBREAKOUT = /^(dammit|damn|excellent|verygood|wontgiveup|speedup|speeddown|freeze)\./;
/** chromium-bsu's two soundtracks are music, not effects. */
const MUSIC_CHROMIUM_BSU = /^music_/;

/**
 * Validation sources, in neither training nor the held-out test: what `braid train --validation-data` early-stops
 * and chooses on, so that choice is made on sounds training never heard (as the test's are) without looking at the
 * test. Game soundtracks (Extreme Tux Racer, Chromium B.S.U.), Tux Racer's recorded slides and impacts, the Deepin
 * and GNOME system sounds, and arcade effects (LBreakout2, Chromium B.S.U., Pinball); the soundtracks also through a
 * telephone channel, as the test's music on hold is 8 kHz.
 */
const VALIDATION_MUSIC: readonly DistractorSource[] = [
  fromFiles('music', 'extremetuxracer-data', '/usr/share/games/etr/music', /\.ogg$/, undefined, [10, 60]),
  fromFiles('music', 'chromium-bsu-data (music)', '/usr/share/games/chromium-bsu/wav', MUSIC_CHROMIUM_BSU),
];
export const VALIDATION_DISTRACTORS: readonly DistractorSource[] = [
  ...VALIDATION_MUSIC,
  ...VALIDATION_MUSIC.map(telephoneBand),
  fromFiles('field', 'extremetuxracer-data (slides)', '/usr/share/games/etr/sounds', /_(slide|hit)\.wav$/),
  fromFiles('system', 'deepin-sound-theme', '/usr/share/sounds/deepin/stereo', /\.wav$/),
  fromFiles('system', 'gnome-audio', '/usr/share/sounds', /\.wav$/),
  fromFiles('effects', 'lbreakout2-data', '/usr/share/games/lbreakout2/sounds', /\.wav$/, SPOKEN_LBREAKOUT),
  fromFiles(
    'effects',
    'chromium-bsu-data',
    '/usr/share/games/chromium-bsu/wav',
    /\.wav$/,
    MUSIC_CHROMIUM_BSU,
  ),
  fromFiles('effects', 'pinball-data', '/usr/share/games/pinball/tux', /\.wav$/, /^gameover\./),
];

/** Clips shorter than this after trimming are left out: a click carries no sound to learn from. */
const MIN_SAMPLES = 0.25 * SAMPLE_RATE;

/** Every clip of the sources, made once (at most two tools at a time) and cached as raw PCM. */
export async function loadDistractors(
  sources: readonly DistractorSource[],
  cacheDir: string,
): Promise<DistractorClip[]> {
  const jobs: {
    source: DistractorSource;
    name: string;
    file: string;
    make: (out: string) => Promise<void>;
  }[] = [];
  for (const source of sources)
    for (const clip of await source.list()) {
      const dir = path.join(cacheDir, 'distractors', source.source.replace(/[^A-Za-z0-9-]+/g, '_'));
      jobs.push({ source, name: clip.name, file: path.join(dir, `${clip.name}.s16`), make: clip.make });
    }
  const samples = await limited(
    2,
    jobs.map((job) => async () => {
      if (!existsSync(job.file)) {
        await mkdir(path.dirname(job.file), { recursive: true });
        const tmp = `${job.file}.${process.pid}.tmp`;
        await job.make(tmp);
        await rename(tmp, job.file);
      }
      const bytes = await readFile(job.file);
      return new Int16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    }),
  );
  return jobs.flatMap((job, i) => {
    const pcm = samples[i] as Int16Array;
    const level = activeLevel(pcm);
    if (pcm.length < MIN_SAMPLES || level === 0) return [];
    return [{ kind: job.source.kind, source: job.source.source, name: job.name, samples: pcm, level }];
  });
}
