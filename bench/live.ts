// `braid live`'s window latency: real speech (asterisk prompts joined by sox) and the opencv-doc clip through ffmpeg in
// real time, as `braid live --audio-file --video-file` captures them, through the live pipeline with the bundled
// model; latency = wall time at each prediction − its window's end (capture clock = wall clock here). The capture's
// progress bounds (src/sources/progress-bounds.ts) against the same capture with them removed (how `braid live`
// closed windows before 2026-12-07: by each modality's watermark, 40 ms of out-of-orderness after its end), one
// capture feeding both pipelines at once. The first two windows of each run are not counted (the sources' start-up).
// With the video, a window waits for the first video frame at or after its end (up to 100 ms at 10 fps).
// Run: npm run bench -- live   (or npx tsx bench/live.ts [seconds] [rounds])
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { filter, lastValueFrom, share, tap } from 'rxjs';
import { captureInputs } from '../src/cli/capture.js';
import { streamGrid } from '../src/cli/live.js';
import { isStreamControl, type StreamInput } from '../src/core/events.js';
import { silentLogger } from '../src/core/logger.js';
import { wallClockMicros } from '../src/core/time.js';
import type { Prediction } from '../src/core/window.js';
import { loadModel } from '../src/model/model-io.js';
import { PredictionPipelineRunner } from '../src/pipeline/prediction-pipeline.js';
import { SPEECH_DIR, VIDEO_CLIP } from '../test/helpers/media.js';

const SECONDS = Number(process.argv[2] ?? 10);
const ROUNDS = Number(process.argv[3] ?? 3);

const dir = mkdtempSync(join(tmpdir(), 'braid-bench-live-'));
const speech = join(dir, 'speech.wav');
const prompts = [
  'auth-thankyou',
  'call-waiting',
  'cannot-complete-as-dialed',
  'conf-onlyperson',
  'vm-intro',
  'pbx-invalid',
  'queue-periodic-announce',
  'agent-loginok',
].map((p) => join(SPEECH_DIR, `${p}.wav`));
execFileSync('sox', [...prompts, speech, 'repeat', '3', 'trim', '0', String(SECONDS + 1)]);

const model = await loadModel('models/demo');
const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
};

/**
 * One capture fed to two pipelines at once, one with the capture's progress bounds and one without, so that both see
 * the same frames at the same instants (the video's phase against the window grid changes from run to run).
 */
async function latencies(video: boolean): Promise<{ before: number[]; bounds: number[] }> {
  const create = () => PredictionPipelineRunner.create({ model, backend: 'cpu-fused', log: silentLogger });
  const [before, bounded] = [await create(), await create()];
  const inputs$ = captureInputs(
    {
      streamId: 'local',
      recorder: 'sox',
      size: '64x48',
      fps: '10',
      audioFile: speech,
      ...(video && { videoFile: VIDEO_CLIP }),
      duration: SECONDS * 1_000_000,
    },
    silentLogger,
    // Audio frames end on the stream's window ends, as `braid live` cuts them.
    streamGrid('local', bounded.windowing),
  ).pipe(share());
  const latency = (ms: number[]) => tap((p: Prediction) => ms.push((wallClockMicros() - p.windowEnd) / 1000));
  const ms = { before: [] as number[], bounds: [] as number[] };
  const done = Promise.all([
    lastValueFrom(
      before
        .run(inputs$.pipe(filter((i: StreamInput) => !(isStreamControl(i) && i.control === 'progress'))))
        .pipe(latency(ms.before)),
      { defaultValue: undefined },
    ),
    lastValueFrom(bounded.run(inputs$).pipe(latency(ms.bounds)), { defaultValue: undefined }),
  ]);
  await done;
  // The last window is flushed when capture ends, not closed by time; the first two wait for the sources to start.
  return { before: ms.before.slice(2, -1), bounds: ms.bounds.slice(2, -1) };
}

console.log(
  `\`braid live\` on ${SECONDS} s of speech (sox) and vtest.avi at 10 fps (ffmpeg), real time, models/demo on cpu-fused; each capture through two pipelines at once, ${ROUNDS} rounds\n`,
);
console.log('| round | sources | windows close on | windows | latency p50 ms | p90 ms | max ms |');
console.log('|---|---|---|---|---|---|---|');
for (let round = 1; round <= ROUNDS; round++)
  for (const video of [true, false]) {
    const r = await latencies(video);
    for (const [name, ms] of [
      ['watermarks only (before)', r.before],
      ['progress bounds', r.bounds],
    ] as const)
      console.log(
        `| ${round} | ${video ? 'audio + video' : 'audio'} | ${name} | ${ms.length} | ${quantile(ms, 0.5).toFixed(1)} | ${quantile(ms, 0.9).toFixed(1)} | ${Math.max(...ms).toFixed(1)} |`,
      );
  }
