// More voices than the English Asterisk prompts: other languages' prompts (telephone band, 8 kHz), the English
// prompts as wideband G.722 (16 kHz), and espeak-ng voices reading prompt transcripts (22.05 kHz). All resampled
// to 16 kHz and trimmed by sox (and decoded by ffmpeg where sox cannot), never by hand.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { mulberry32 } from '../../src/model/weights.js';
import { shuffleInPlace } from '../../src/train/shuffle.js';
import { limited } from './limited.js';
import { readTranscripts, type SpeechPrompt } from './media.js';
import { SAMPLE_RATE } from './plan.js';

const run = promisify(execFile);

const SOUNDS = '/usr/share/asterisk/sounds';
/** Debian asterisk-core-sounds-en-g722: the English prompts (same speaker, same names) as 16 kHz G.722. */
export const G722_DIR = `${SOUNDS}/en_US_f_Allison`;

const RAW = ['-t', 'raw', '-r', String(SAMPLE_RATE), '-b', '16', '-c', '1', '-e', 'signed-integer'];
const TRIM = ['silence', '1', '0.02', '1%', 'reverse', 'silence', '1', '0.02', '1%', 'reverse'];
const RATE = ['rate', '-v', String(SAMPLE_RATE)];

async function cached(file: string, make: (tmp: string) => Promise<void>): Promise<Int16Array> {
  if (!existsSync(file)) {
    await mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    await make(tmp);
    await rename(tmp, file);
  }
  const bytes = await readFile(file);
  return new Int16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

const inLength = (p: SpeechPrompt): boolean =>
  p.samples.length >= 0.3 * SAMPLE_RATE && p.samples.length <= 8 * SAMPLE_RATE;

/** Debian asterisk-core-sounds-<lang>: the prompt transcripts, "name: text" per line. */
export const transcriptFile = (lang: string): string =>
  `/usr/share/doc/asterisk-core-sounds-${lang}/core-sounds-${lang}.txt.gz`;

/**
 * Prompts under the core sounds' names, read with a core-sounds language's transcripts: one Asterisk language
 * ({@link asteriskVoice}) or another speaker's prompts (Debian asterisk-prompt-*).
 */
export interface PromptVoice {
  /** The voice's name in labels and the manifest. */
  readonly voice: string;
  readonly dir: string;
  /** The core-sounds language whose transcripts name and transcribe the prompts. */
  readonly lang: string;
  /** The Debian package that installs them, for the error when they are missing. */
  readonly pkg: string;
}

/** One Asterisk language's prompts (Debian asterisk-core-sounds-<lang>-wav, 8 kHz telephone speech), voice `<lang>`. */
export const asteriskVoice = (lang: string): PromptVoice => ({
  voice: lang,
  dir: path.join(SOUNDS, lang),
  lang,
  pkg: `asterisk-core-sounds-${lang}-wav`,
});

/** A prompt voice's prompts that have a spoken transcript, 0.3–8 s after trimming, named `<voice>:<prompt>`, sorted. */
export async function loadPromptVoice(spec: PromptVoice, cacheDir: string): Promise<SpeechPrompt[]> {
  const { voice, dir, lang } = spec;
  if (!existsSync(dir)) throw new Error(`${dir} is missing: install ${spec.pkg} (see .ci/run)`);
  const transcripts = await readTranscripts(transcriptFile(lang));
  const names = [...transcripts.keys()]
    .filter((n) => !n.startsWith('silence/') && existsSync(path.join(dir, `${n}.wav`)))
    .sort();
  if (names.length === 0) throw new Error(`${dir} holds no transcribed .wav prompts: install ${spec.pkg}`);
  const samples = await limited(
    2,
    names.map(
      (n) => () =>
        cached(path.join(cacheDir, 'voices', voice, `${n.replaceAll('/', '__')}.s16`), (tmp) =>
          run('sox', ['-R', path.join(dir, `${n}.wav`), ...RAW, tmp, ...TRIM, ...RATE]).then(() => undefined),
        ),
    ),
  );
  return names
    .map((name, i) => ({
      name: `${voice}:${name}`,
      voice,
      transcript: transcripts.get(name) as string,
      samples: samples[i] as Int16Array,
    }))
    .filter(inLength);
}

/** The given English prompts as wideband speech: G.722 decoded by ffmpeg, trimmed by sox; `en-g722:<prompt>`. */
export async function loadG722Voice(
  prompts: readonly SpeechPrompt[],
  cacheDir: string,
): Promise<SpeechPrompt[]> {
  const have = prompts.filter((p) => existsSync(path.join(G722_DIR, `${p.name}.g722`)));
  if (prompts.length > 0 && have.length === 0)
    throw new Error(`${G722_DIR} holds no .g722 prompts: install asterisk-core-sounds-en-g722 (see .ci/run)`);
  const samples = await limited(
    2,
    have.map(
      (p) => () =>
        cached(
          path.join(cacheDir, 'voices', 'en-g722', `${p.name.replaceAll('/', '__')}.s16`),
          async (tmp) => {
            const decoded = `${tmp}.wav`;
            await run('ffmpeg', [
              ...['-loglevel', 'error', '-y', '-threads', '1', '-f', 'g722'],
              ...[
                '-i',
                path.join(G722_DIR, `${p.name}.g722`),
                '-ac',
                '1',
                '-ar',
                String(SAMPLE_RATE),
                decoded,
              ],
            ]);
            await run('sox', ['-R', decoded, ...RAW, tmp, ...TRIM]);
            await rm(decoded);
          },
        ),
    ),
  );
  return have
    .map((p, i) => ({ ...p, name: `en-g722:${p.name}`, voice: 'en-g722', samples: samples[i] as Int16Array }))
    .filter(inLength);
}

/**
 * A text's words as espeak-ng reads them: case, punctuation and spacing change an utterance's intonation at most, so
 * "Goodbye!" and "goodbye" are the same words heard twice.
 */
export const sameWords = (text: string): string =>
  text
    .normalize('NFKC')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .trim();

/** An espeak-ng utterance's cache key: what it reads and how, so a new draw never reuses another text's audio. */
const utteranceKey = (s: { text: string; speed: number; pitch: number }): string =>
  createHash('sha256')
    .update(JSON.stringify([s.text, s.speed, s.pitch]))
    .digest('hex')
    .slice(0, 32);

export interface EspeakVoice {
  /** espeak-ng voice and variant, e.g. `en-us+m3`. */
  readonly voice: string;
  /** Texts it reads: transcripts of its language. */
  readonly texts: readonly string[];
}

/**
 * `count` utterances of an espeak-ng voice (wideband, 22.05 kHz), each a transcript drawn by `seed` and read at its
 * own speed (130–200 words a minute) and pitch (25–75), resampled to 16 kHz; `espeak/<voice>:<text>`.
 */
export async function loadEspeakVoice(
  spec: EspeakVoice,
  count: number,
  seed: number,
  cacheDir: string,
): Promise<SpeechPrompt[]> {
  const random = mulberry32(seed);
  const texts = shuffleInPlace([...spec.texts], random).slice(0, count);
  const settings = texts.map((text) => ({
    text,
    speed: Math.round(130 + 70 * random()),
    pitch: Math.round(25 + 50 * random()),
  }));
  // A text drawn twice at the same speed and pitch is one cache file, made once (two makers would share a tmp file).
  const keys = settings.map(utteranceKey);
  const unique = [...new Map(settings.map((s, i) => [keys[i] as string, s])).entries()];
  const made = await limited(
    2,
    unique.map(
      ([key, s]) =>
        () =>
          cached(path.join(cacheDir, 'voices', `espeak-${spec.voice}`, `${key}.s16`), async (tmp) => {
            const wav = `${tmp}.wav`;
            await run('espeak-ng', [
              '-v',
              spec.voice,
              '-s',
              String(s.speed),
              '-p',
              String(s.pitch),
              '-w',
              wav,
              s.text,
            ]);
            await run('sox', ['-R', wav, ...RAW, tmp, ...TRIM, ...RATE]);
            await rm(wav);
          }),
    ),
  );
  const samples = new Map(unique.map(([key], i) => [key, made[i] as Int16Array]));
  return settings
    .map((s, i) => ({
      name: `espeak/${spec.voice}:${s.text}`,
      voice: `espeak/${spec.voice}`,
      transcript: s.text,
      samples: samples.get(keys[i] as string) as Int16Array,
    }))
    .filter(inLength);
}
