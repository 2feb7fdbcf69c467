import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

/** Real media shipped by Debian packages (asterisk-core-sounds-en-wav, opencv-doc), converted once per run. */
export const SPEECH_DIR = '/usr/share/asterisk/sounds/en';
export const VIDEO_CLIP = '/usr/share/doc/opencv-doc/examples/data/vtest.avi';

const cacheDir = join(process.cwd(), 'test-artifacts', 'media');

/** Speech for Chromium's fake microphone: a few real prompts, 48 kHz mono WAV. */
export function fakeMicrophoneWav(): string {
  const out = join(cacheDir, 'speech-48k.wav');
  if (!existsSync(out)) {
    mkdirSync(cacheDir, { recursive: true });
    const prompts = ['auth-thankyou', 'call-waiting', 'cannot-complete-as-dialed']
      .map((p) => join(SPEECH_DIR, `${p}.wav`))
      .filter(existsSync);
    execFileSync('sox', [...prompts, '-r', '48000', '-c', '1', '-b', '16', out]);
  }
  return out;
}

/** A real video clip for Chromium's fake camera (y4m, 320x240, 15 fps, 4 s). */
export function fakeCameraY4m(): string {
  const out = join(cacheDir, 'vtest-320x240.y4m');
  if (!existsSync(out)) {
    mkdirSync(cacheDir, { recursive: true });
    execFileSync('ffmpeg', [
      '-loglevel',
      'error',
      '-y',
      '-i',
      VIDEO_CLIP,
      '-t',
      '4',
      '-vf',
      'scale=320:240,fps=15',
      '-pix_fmt',
      'yuv420p',
      out,
    ]);
  }
  return out;
}
