import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { lastValueFrom, toArray } from 'rxjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { captureInputs } from '../../src/cli/capture.js';
import { capturedThrough, isStreamControl } from '../../src/core/events.js';
import { saveModel } from '../../src/model/model-io.js';
import { recordingInfo } from '../../src/record/recording-reader.js';
import { untrainedModel } from '../helpers/demo-pipeline.js';
import { SPEECH_DIR, VIDEO_CLIP } from '../helpers/media.js';
import { requireTool } from '../helpers/system-tools.js';

const run = promisify(execFile);
const braid = (...args: string[]) =>
  run(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], { encoding: 'utf8' });
const hasFfmpeg = requireTool('ffmpeg');
const dir = mkdtempSync(join(tmpdir(), 'braid-cli-'));
const speech = join(SPEECH_DIR, 'auth-thankyou.wav');
const texts = join(dir, 'texts.ndjson');

describe.skipIf(!hasFfmpeg)('braid record / info / live on real media through ffmpeg', () => {
  beforeAll(async () => {
    writeFileSync(
      texts,
      `${JSON.stringify({ text: 'hello there' })}\n${JSON.stringify({ text: 'second line' })}\n`,
    );
    await saveModel(untrainedModel(), join(dir, 'model'));
  });

  it('records speech, video and text for a duration, and info describes the file', async () => {
    const out = join(dir, 'session.mcap');
    const { stderr } = await braid(
      'record',
      '--audio-file',
      speech,
      '--video-file',
      VIDEO_CLIP,
      '--text',
      texts,
      '--duration',
      '2.5s',
      '--out',
      out,
    );
    expect(stderr).toMatch(/wrote .*session\.mcap: \d+ events/);
    const info = await recordingInfo(out);
    expect(info.complete).toBe(true);
    expect(info.streams.map((s) => s.streamId)).toEqual(['local']);
    const counts = info.streams[0]!.messages;
    // The prompt lasts 0.96 s: 48 audio frames of 20 ms; 2.5 s of video at 10 fps gives about 25 frames.
    expect(counts.audio).toBe(48);
    expect(counts.video).toBeGreaterThan(10);
    expect(counts.text).toBe(2);
    const { stdout } = await braid('info', out);
    expect(stdout).toMatch(/local: .*audio \d+, .*video \d+/);
    expect(stdout).toContain('foxglove.RawAudio');
  }, 60_000);

  it.each(['SIGINT', 'SIGTERM', 'SIGHUP'] as const)(
    'finishes a readable recording on %s (Ctrl-C, a service manager or timeout, a closed terminal)',
    async (signal) => {
      const out = join(dir, `interrupted-${signal}.mcap`);
      const child = spawn(process.execPath, [
        '--import',
        'tsx',
        'src/cli/run.ts',
        'record',
        '--video-file',
        VIDEO_CLIP,
        '--out',
        out,
      ]);
      let stderr = '';
      // Interrupt once the recorder says capture runs (and Ctrl-C is handled), not after a guessed delay.
      await new Promise<void>((resolve, reject) => {
        child.stderr.on('data', (d) => {
          stderr += String(d);
          if (/Ctrl-C finishes the file/.test(stderr)) resolve();
        });
        child.once('exit', (code) =>
          reject(new Error(`record exited with ${code} before capturing: ${stderr}`)),
        );
      });
      child.kill(signal);
      const code = await new Promise<number | null>((r) => child.once('exit', r));
      expect(stderr).toMatch(new RegExp(`${signal}, stopping capture`));
      expect(code).toBe(0);
      const info = await recordingInfo(out);
      expect(info.complete).toBe(true);
      expect(info.streams[0]!.messages.video).toBeGreaterThan(0);
    },
    60_000,
  );

  it('fails (exit 1), saying so, when the disk cannot keep up and events were refused', async () => {
    const lines = join(dir, 'many.ndjson');
    writeFileSync(
      lines,
      Array.from({ length: 60_000 }, (_, i) => JSON.stringify({ text: `line ${i} ${'x'.repeat(40)}` })).join(
        '\n',
      ),
    );
    // The "disk": a pipe whose reader holds it open and reads nothing for 3 s, then everything.
    const out = join(dir, 'slow-disk.mcap');
    await run('mkfifo', [out]);
    const reader = spawn('sh', ['-c', `exec 3<"${out}"; sleep 3; cat <&3 >/dev/null`]);
    const done = braid('record', '--text', lines, '--out', out, '--overwrite').then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );
    const { code, stderr } = await done;
    reader.kill();
    expect(code).toBe(1);
    expect(stderr).toMatch(/the disk is not keeping up with the capture: events are being refused/);
    expect(stderr).toMatch(
      /slow-disk\.mcap misses \d+ captured events the recorder refused \(\{\\?"write_backlog\\?":\d+\}\)/,
    );
  }, 60_000);

  it('says which --text lines it skipped, and how many', async () => {
    const lines = join(dir, 'some-bad.ndjson');
    writeFileSync(lines, '{"text":"one"}\nnot json\n{"txt":"two"}\n{"text":"three"}\n');
    const out = join(dir, 'some-bad.mcap');
    const { stderr } = await braid('record', '--text', lines, '--out', out);
    expect(stderr).toMatch(
      /--text .*some-bad\.ndjson: skipped 2 line\(s\) that are not text events \(bad_json 1, bad_text_line 1\)/,
    );
    expect((await recordingInfo(out)).streams[0]!.messages.text).toBe(2);
  }, 60_000);

  it('prints a prediction per window from live capture', async () => {
    const { stdout } = await braid(
      'live',
      '--audio-file',
      speech,
      '--video-file',
      VIDEO_CLIP,
      '--duration',
      '2.2s',
      '--model',
      join(dir, 'model'),
      '--backend',
      'cpu-fused',
      '--json',
    );
    const lines = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.length).toBeGreaterThanOrEqual(3);
    expect(lines.every((l) => l.streamId === 'local')).toBe(true);
    // The prompt is 0.96 s long and the video starts a little later: some window has both.
    expect(lines.some((l) => l.present.audio && l.present.video)).toBe(true);
    expect(Object.keys(lines[0].scores)).toEqual(['speech', 'motion', 'typing', 'conversation']);
  }, 60_000);

  it('bounds live capture by what both sources have captured, as the demo page does', async () => {
    const inputs = await lastValueFrom(
      captureInputs({
        streamId: 'local',
        recorder: 'sox',
        size: '64x48',
        fps: '10',
        audioFile: speech,
        videoFile: VIDEO_CLIP,
        duration: 1_500_000,
      }).pipe(toArray()),
    );
    const reached = { audio: 0, video: 0 };
    const bounds: number[] = [];
    for (const input of inputs) {
      if (isStreamControl(input)) {
        if (input.control !== 'progress') continue;
        // Never past what either source has sent.
        expect(input.time).toBeLessThanOrEqual(Math.min(reached.audio, reached.video));
        bounds.push(input.time);
      } else if (input.modality === 'audio' || input.modality === 'video')
        reached[input.modality] = Math.max(reached[input.modality], capturedThrough(input));
    }
    expect(bounds.length).toBeGreaterThan(10);
    expect(bounds.every((t, i) => i === 0 || t > bounds[i - 1]!)).toBe(true);
  }, 60_000);

  it('names the cause when a source cannot start', async () => {
    await expect(
      braid('record', '--video-file', join(dir, 'missing.avi'), '--out', join(dir, 'x.mcap')),
    ).rejects.toMatchObject({
      stderr: expect.stringMatching(/missing\.avi/),
    });
    // Nothing was captured: no empty recording is left to block the retry.
    expect(existsSync(join(dir, 'x.mcap'))).toBe(false);
    writeFileSync(join(dir, 'taken.mcap'), '');
    await expect(
      braid('record', '--video-file', VIDEO_CLIP, '--duration', '1s', '--out', join(dir, 'taken.mcap')),
    ).rejects.toMatchObject({
      stderr: expect.stringMatching(/taken\.mcap: .*the file exists \(--overwrite/),
    });
    await expect(braid('record', '--out', join(dir, 'y.mcap'))).rejects.toMatchObject({
      stderr: expect.stringMatching(/nothing to capture/),
    });
  }, 60_000);
});
