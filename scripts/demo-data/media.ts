import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { limited } from './limited.js';
import { SAMPLE_RATE } from './plan.js';

const run = promisify(execFile);

/** Debian asterisk-core-sounds-en-wav: Allison Smith's prompts, 8 kHz WAV, CC-BY-SA 3.0. */
export const SPEECH_DIR = '/usr/share/asterisk/sounds/en';
/** Debian asterisk-core-sounds-en: the prompts' transcripts, "name: text" per line. */
export const TRANSCRIPTS = '/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz';
/** Debian opencv-doc: OpenCV's sample clips. */
export const VIDEO_DIR = '/usr/share/doc/opencv-doc/examples/data';
/** The raw gray frames the demo page sends. */
export const FRAME_WIDTH = 64;
export const FRAME_HEIGHT = 48;

export interface SpeechPrompt {
  /** Path under SPEECH_DIR without `.wav`, e.g. `digits/5`; other voices prefix theirs (`fr:digits/5`). */
  readonly name: string;
  /** Who speaks it and how: `en` (these prompts), `en-g722`, `fr`, `espeak/en-us+m3`, … */
  readonly voice: string;
  readonly transcript: string;
  /** 16 kHz mono PCM16, leading and trailing silence trimmed. */
  readonly samples: Int16Array;
}

export interface VideoSource {
  readonly name: string;
  /** FRAME_WIDTH × FRAME_HEIGHT gray frames at 10 fps. */
  readonly frames: readonly Uint8Array[];
}

/** Transcripts by prompt name; bracketed ones ("[ascending tones]") are not speech and are left out. */
export async function readTranscripts(file = TRANSCRIPTS): Promise<Map<string, string>> {
  const text = gunzipSync(await readFile(file)).toString('utf8');
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.startsWith(';')) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim();
    const transcript = line.slice(colon + 1).trim();
    if (transcript.length === 0 || transcript.startsWith('[')) continue;
    out.set(name, transcript);
  }
  return out;
}

/**
 * Converts once with sox (trim silence at −40 dBFS at both ends, resample to 16 kHz) and caches the raw PCM. Every
 * sox call of `npm run data` passes -R (repeatable): without it sox seeds its dither (and synth noise) anew on each
 * run, so a fresh cache gave other samples and other sessions than the last.
 */
async function speechSamples(name: string, cacheDir: string): Promise<Int16Array> {
  const out = path.join(cacheDir, 'speech', `${name.replaceAll('/', '__')}.s16`);
  if (!existsSync(out)) {
    await mkdir(path.dirname(out), { recursive: true });
    const tmp = `${out}.${process.pid}.tmp`;
    await run('sox', [
      '-R',
      path.join(SPEECH_DIR, `${name}.wav`),
      ...['-t', 'raw', '-r', String(SAMPLE_RATE), '-b', '16', '-c', '1', '-e', 'signed-integer', tmp],
      ...['silence', '1', '0.02', '1%', 'reverse', 'silence', '1', '0.02', '1%', 'reverse'],
      ...['rate', '-v', String(SAMPLE_RATE)],
    ]);
    await rename(tmp, out);
  }
  const bytes = await readFile(out);
  return new Int16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

/** Every prompt with a spoken transcript and a trimmed length in [minSeconds, maxSeconds], sorted by name. */
export async function loadSpeechPrompts(
  cacheDir: string,
  options: { minSeconds?: number; maxSeconds?: number } = {},
): Promise<SpeechPrompt[]> {
  const min = (options.minSeconds ?? 0.3) * SAMPLE_RATE;
  const max = (options.maxSeconds ?? 8) * SAMPLE_RATE;
  const transcripts = await readTranscripts();
  const names = [...transcripts.keys()]
    .filter((n) => !n.startsWith('silence/') && existsSync(path.join(SPEECH_DIR, `${n}.wav`)))
    .sort();
  const samples = await limited(
    2,
    names.map((n) => () => speechSamples(n, cacheDir)),
  );
  return names
    .map((name, i) => ({
      name,
      voice: 'en',
      transcript: transcripts.get(name) as string,
      samples: samples[i] as Int16Array,
    }))
    .filter((p) => p.samples.length >= min && p.samples.length <= max);
}

/** The frames of a raw FRAME_WIDTH × FRAME_HEIGHT gray file (ffmpeg's rawvideo output); a partial last frame is left out. */
export async function readGrayFrames(file: string): Promise<Uint8Array[]> {
  const bytes = await readFile(file);
  const size = FRAME_WIDTH * FRAME_HEIGHT;
  const frames: Uint8Array[] = [];
  for (let i = 0; i + size <= bytes.byteLength; i += size)
    frames.push(new Uint8Array(bytes.subarray(i, i + size)));
  return frames;
}

/**
 * Decodes a clip once with ffmpeg to 64×48 gray at 10 fps (area-averaged, as a browser canvas would shrink a camera
 * picture) and caches it; trailing near-black frames (a fade-out) are dropped, since a black screen is not motion.
 */
export async function loadVideo(name: string, cacheDir: string): Promise<VideoSource> {
  const out = path.join(cacheDir, 'video', `${name}.gray`);
  if (!existsSync(out)) {
    await mkdir(path.dirname(out), { recursive: true });
    const tmp = `${out}.${process.pid}.tmp`;
    await run('ffmpeg', [
      ...['-loglevel', 'error', '-y', '-i', path.join(VIDEO_DIR, `${name}.avi`)],
      ...['-vf', `fps=${10},scale=${FRAME_WIDTH}:${FRAME_HEIGHT}:flags=area,format=gray`],
      ...['-f', 'rawvideo', tmp],
    ]);
    await rename(tmp, out);
  }
  const frames = await readGrayFrames(out);
  const mean = (f: Uint8Array): number => f.reduce((a, b) => a + b, 0) / f.length;
  while (frames.length > 0 && mean(frames[frames.length - 1] as Uint8Array) < 10) frames.pop();
  return { name, frames };
}
