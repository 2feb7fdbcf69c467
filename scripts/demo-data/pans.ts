// A camera panning and zooming over a real photograph: ffmpeg's zoompan over OpenCV's sample images (Debian
// opencv-doc), so the demo task has more moving scenes than the two sample videos, and one never seen in training.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rename } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { mulberry32 } from '../../src/model/weights.js';
import { FRAME_HEIGHT, FRAME_WIDTH, readGrayFrames, VIDEO_DIR, type VideoSource } from './media.js';
import { FPS } from './plan.js';

const run = promisify(execFile);

/** 30 s of camera movement per photo. */
const PAN_FRAMES = 30 * FPS;

/**
 * The path of one pan: zoom and position each a slow sine of the output frame number `on`, with periods of 8–30 s
 * and phases drawn from the photo's seed, so every photo is filmed differently but the same on every run.
 */
function panExpressions(seed: number): { z: string; x: string; y: string } {
  const random = mulberry32(seed);
  const period = (): number => Math.round((8 + 22 * random()) * FPS);
  const phase = (): string => (2 * Math.PI * random()).toFixed(3);
  const zoom = (1.3 + 0.5 * random()).toFixed(3);
  const depth = (0.1 + 0.3 * random()).toFixed(3);
  return {
    z: `${zoom}+${depth}*sin(2*PI*on/${period()}+${phase()})`,
    x: `(iw-iw/zoom)*(0.5+0.5*sin(2*PI*on/${period()}+${phase()}))`,
    y: `(ih-ih/zoom)*(0.5+0.5*sin(2*PI*on/${period()}+${phase()}))`,
  };
}

/**
 * A 30 s pan over `photo` (a file in opencv-doc's data folder), at 10 fps, 64×48 gray, area-averaged as a browser
 * canvas shrinks a camera picture; cached. Named `pan:<photo>`.
 */
export async function loadPan(photo: string, seed: number, cacheDir: string): Promise<VideoSource> {
  const name = `pan:${photo.replace(/\.[^.]+$/, '')}`;
  const out = path.join(cacheDir, 'video', `${name.replace(':', '-')}-${seed}.gray`);
  if (!existsSync(out)) {
    const input = path.join(VIDEO_DIR, photo);
    if (!existsSync(input)) throw new Error(`${input} is missing: install opencv-doc (see .ci/run)`);
    await mkdir(path.dirname(out), { recursive: true });
    const tmp = `${out}.${process.pid}.tmp`;
    const { z, x, y } = panExpressions(seed);
    await run('ffmpeg', [
      ...['-loglevel', 'error', '-y', '-threads', '1', '-filter_threads', '1'],
      ...['-loop', '1', '-framerate', String(FPS), '-i', input],
      '-vf',
      [
        // A 4:3 picture of the photo first, so every photo is filmed through the same camera shape.
        'scale=640:480:force_original_aspect_ratio=increase',
        'crop=640:480',
        `zoompan=z='${z}':x='${x}':y='${y}':d=1:s=320x240:fps=${FPS}`,
        `scale=${FRAME_WIDTH}:${FRAME_HEIGHT}:flags=area`,
        'format=gray',
      ].join(','),
      ...['-frames:v', String(PAN_FRAMES), '-f', 'rawvideo', tmp],
    ]);
    await rename(tmp, out);
  }
  return { name, frames: await readGrayFrames(out) };
}
