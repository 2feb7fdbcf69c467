/**
 * Feature extraction speed, one markdown table. Run: npx tsx bench/features.ts [--quick]
 *
 * - audio: log-mel + RMS window features of real speech (the features fixture, looped) in 1 s windows of 20 ms
 *   events, as multiples of real time on one core, for each kernel (WebAssembly SIMD, JavaScript); beside them, in
 *   the same run and in turn with them, a vectorised numpy log-mel of the same samples (python3 with numpy, one BLAS
 *   thread) when python3 is present. Also checks that the kernels' features are identical. `--audio`: audio only.
 * - video: raw 64x48 gray and rgb frames through the aggregator (10-frame windows), frames/s on one core.
 * - JPEG 320x240 (real frames of opencv-doc's vtest.avi, made by ffmpeg, else sharp-made gradients): sharp's plain
 *   pipeline `sharp(jpeg).greyscale().resize(16,12).raw().toBuffer()` one after another, against
 *   decodeCompressedFrames (+ the aggregator). Frames per wall second and per CPU second (user + system of this
 *   process, all threads), since sharp decodes on libuv's thread pool.
 * - text: ~60-character sentences, windows of 10 events, events/s.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { from, lastValueFrom, toArray } from 'rxjs';
import sharp from 'sharp';
import type { AnySourceEvent } from '../src/core/events.js';
import {
  AUDIO_KERNELS,
  AudioFeaturizer,
  createFeatureAggregator,
  DEFAULT_FEATURE_CONFIG,
  decodeCompressedFrames,
  wasmSimdSupported,
} from '../src/features/index.js';
import { DropCounter } from '../src/sources/drop-counter.js';
import { syntheticEvents } from '../src/sources/synthetic.js';

const quick = process.argv.includes('--quick');
const audioOnly = process.argv.includes('--audio');
const AUDIO_SECONDS = quick ? 60 : 600;
const AUDIO_ROUNDS = quick ? 3 : 5;
/** Analysis frames in the benchmark's audio: 98 per 1 s window. */
const audioFrames = AUDIO_SECONDS * (Math.floor((16_000 - 400) / 160) + 1);
const bounds = { streamId: 'bench', index: 0, start: 0, end: 0 };
const rows: string[][] = [];
const fmt = (n: number, digits = 0): string =>
  n.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits });

function printTable(): void {
  console.log(
    `features benchmark — ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, node ${process.version}, ${new Date().toISOString().slice(0, 10)}, load average ${fmt(os.loadavg()[0] ?? 0, 1)}${quick ? ' (quick)' : ''}`,
  );
  console.log('');
  console.log('| measure | speed | note |');
  console.log('|---|---|---|');
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
}

interface Timing {
  readonly wall: number;
  readonly cpu: number;
}

/** CPU seconds (user + system, all threads) this process used since `start`. */
function cpuSeconds(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
}

function best<T>(runs: number, f: () => T): { seconds: number; result: T } {
  let seconds = Number.POSITIVE_INFINITY;
  let result = f(); // warm-up
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    result = f();
    seconds = Math.min(seconds, (performance.now() - t) / 1000);
  }
  return { seconds, result };
}

// ---------------------------------------------------------------- audio
const speechBytes = readFileSync(new URL('../test/fixtures/features/speech-16k.s16le', import.meta.url));
const speech = new Int16Array(speechBytes.buffer, speechBytes.byteOffset, speechBytes.byteLength / 2);
const pcm = new Int16Array(AUDIO_SECONDS * 16_000);
for (let i = 0; i < pcm.length; i += speech.length)
  pcm.set(speech.subarray(0, Math.min(speech.length, pcm.length - i)), i);
const audioWindows: AnySourceEvent[][] = [];
for (let w = 0; w < AUDIO_SECONDS; w++) {
  const window: AnySourceEvent[] = [];
  for (let e = 0; e < 50; e++) {
    const start = w * 16_000 + e * 320;
    window.push({
      streamId: 'bench',
      modality: 'audio',
      time: start * 62.5,
      seq: w * 50 + e,
      payload: { sampleRate: 16_000, channels: 1, samples: pcm.subarray(start, start + 320) },
    });
  }
  audioWindows.push(window);
}
{
  const kernels = AUDIO_KERNELS.filter((k) => k === 'js' || wasmSimdSupported);
  const featurizers = kernels.map(
    (k) => new AudioFeaturizer(DEFAULT_FEATURE_CONFIG.audio, new DropCounter(), k),
  );
  // What numpy computes too: the log-mel and RMS aggregates without the descriptors, on the default kernel.
  const { descriptors: _descriptors, ...logMelOnly } = DEFAULT_FEATURE_CONFIG.audio;
  featurizers.push(new AudioFeaturizer(logMelOnly, new DropCounter()));
  const outputs = featurizers.map((f) => audioWindows.map((window) => f.featurize(window))); // warm-up
  const identical = outputs
    .slice(0, kernels.length)
    .every((out) =>
      out.every((features, w) => Buffer.from(features.buffer).equals(Buffer.from(outputs[0]![w]!.buffer))),
    );
  const numpy = numpyBaseline(pcm);
  // Rounds in turn — each kernel once, then numpy once — so that load from elsewhere hits all of them alike. Wall
  // time and CPU time (this process's, or python's process_time): on a shared machine the CPU time leaves out the
  // time a process waits for a core.
  const ours = featurizers.map(() => ({ wall: Number.POSITIVE_INFINITY, cpu: Number.POSITIVE_INFINITY }));
  let theirs = null as Timing | null;
  for (let round = 0; round < AUDIO_ROUNDS; round++) {
    featurizers.forEach((featurizer, k) => {
      const cpuStart = process.cpuUsage();
      const t = performance.now();
      for (const window of audioWindows) featurizer.featurize(window);
      const wall = (performance.now() - t) / 1000;
      const cpu = cpuSeconds(cpuStart);
      ours[k] = { wall: Math.min(ours[k]!.wall, wall), cpu: Math.min(ours[k]!.cpu, cpu) };
    });
    const n = numpy?.round() ?? null;
    if (n !== null)
      theirs = { wall: Math.min(theirs?.wall ?? n.wall, n.wall), cpu: Math.min(theirs?.cpu ?? n.cpu, n.cpu) };
  }
  numpy?.close();
  const label = {
    'wasm-simd': 'WebAssembly SIMD kernel (default)',
    js: 'JavaScript kernel (fft.js; the path before)',
  };
  const speed = (t: Timing): string =>
    `${fmt(AUDIO_SECONDS / t.wall)}× real time (${fmt((t.wall / audioFrames) * 1e6, 2)} µs/frame; CPU ${fmt((t.cpu / audioFrames) * 1e6, 2)})`;
  kernels.forEach((kernel, k) => {
    const t = ours[k]!;
    const ratio =
      theirs === null
        ? 'numpy not measured'
        : `**${fmt(theirs.wall / t.wall, 2)}× numpy** (CPU time: ${fmt(theirs.cpu / t.cpu, 2)}×)`;
    rows.push([
      `audio log-mel 40 + RMS + descriptors (default config), 1 s windows, ${label[kernel]}`,
      speed(t),
      `one core; ${ratio}`,
    ]);
  });
  {
    const t = ours[kernels.length]!;
    rows.push([
      `audio log-mel 40 + RMS only (numpy's work), 1 s windows, ${featurizers[kernels.length]!.kernel} kernel`,
      speed(t),
      theirs === null
        ? 'numpy not measured'
        : `one core; **${fmt(theirs.wall / t.wall, 2)}× numpy** (CPU time: ${fmt(theirs.cpu / t.cpu, 2)}×)`,
    ]);
  }
  if (theirs !== null)
    rows.push([
      'baseline: numpy vectorised log-mel, same audio',
      speed(theirs),
      `one BLAS thread; best of ${AUDIO_ROUNDS} rounds in turn with ours`,
    ]);
  else rows.push(['baseline: numpy vectorised log-mel', 'not measured', 'python3 with numpy not found']);
  rows.push([
    'kernels agree',
    identical ? `bit for bit on all ${fmt(AUDIO_SECONDS)} windows` : '**NO: outputs differ**',
    kernels.join(' = '),
  ]);
  if (!identical) process.exitCode = 1;
}

/**
 * numpy's time for the same features: each round() runs a fresh python3 (one BLAS thread) that computes them once
 * to warm up, then once timed (wall and process CPU seconds). null without python3 + numpy.
 */
function numpyBaseline(samples: Int16Array): { round(): Timing | null; close(): void } | null {
  const dir = mkdtempSync(join(os.tmpdir(), 'braid-bench-'));
  const file = join(dir, 'pcm.s16le');
  writeFileSync(file, new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength));
  const script = `
import sys, time, numpy as np
x = np.fromfile(sys.argv[1], dtype='<i2').astype(np.float64) / 32768.0
def mel(f): return 2595.0 * np.log10(1.0 + f / 700.0)
edges = 700.0 * (10.0 ** (np.linspace(mel(0.0), mel(8000.0), 42) / 2595.0) - 1.0)
freqs = np.arange(257) * 16000 / 512
M = np.maximum(0, np.minimum((freqs[None] - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None],
                             (edges[2:, None] - freqs[None]) / (edges[2:] - edges[1:-1])[:, None]))
win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
idx = np.arange(400)[None, :] + 160 * np.arange(98)[:, None]
def run():
    out = []
    for w in range(len(x) // 16000):
        f = x[w * 16000:(w + 1) * 16000][idx]
        lm = np.log(np.abs(np.fft.rfft(f * win, n=512, axis=1)) ** 2 @ M.T + 1e-6)
        r = np.sqrt(np.mean(f ** 2, axis=1))
        out.append(np.concatenate([lm.mean(0), lm.max(0), [r.mean(), r.max()]]))
    return out
run()
t, c = time.perf_counter(), time.process_time()
run()
print(time.perf_counter() - t, time.process_time() - c)
`;
  const env = { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1', MKL_NUM_THREADS: '1' };
  const round = (): Timing | null => {
    const result = spawnSync('python3', ['-c', script, file], { encoding: 'utf8', env });
    if (result.status !== 0) return null;
    const [wall, cpu] = result.stdout.trim().split(' ').map(Number);
    return { wall: wall ?? Number.NaN, cpu: cpu ?? Number.NaN };
  };
  const close = (): void => rmSync(dir, { recursive: true, force: true });
  if (round() === null) {
    close();
    return null;
  }
  return { round, close };
}

if (audioOnly) {
  printTable();
  process.exit();
}

// ---------------------------------------------------------------- raw video
for (const format of ['gray', 'rgb'] as const) {
  const frames = [
    ...syntheticEvents({
      streamId: 'bench',
      seed: 1,
      duration: (quick ? 200 : 1000) * 100_000,
      modalities: ['video'],
      video: { width: 64, height: 48, format },
    }),
  ];
  const windows: AnySourceEvent[][] = [];
  for (let i = 0; i < frames.length; i += 10) windows.push(frames.slice(i, i + 10));
  const { aggregator } = createFeatureAggregator(DEFAULT_FEATURE_CONFIG);
  const { seconds } = best(5, () => {
    for (const window of windows) aggregator.aggregate('video', window, bounds);
  });
  rows.push([
    `video raw 64x48 ${format} → features, 10-frame windows`,
    `${fmt(frames.length / seconds)} frames/s`,
    'one core',
  ]);
}

// ---------------------------------------------------------------- JPEG
const jpegs = await loadJpegs(quick ? 100 : 300);
/** Best wall and CPU seconds of each contender over rounds run in turn, so load from elsewhere hits all alike. */
async function measureInTurn(
  contenders: Record<string, () => Promise<void>>,
  rounds = 4,
): Promise<Record<string, { wall: number; cpu: number }>> {
  const best: Record<string, { wall: number; cpu: number }> = {};
  for (const run of Object.values(contenders)) await run(); // warm-up
  for (let round = 0; round < rounds; round++)
    for (const [name, run] of Object.entries(contenders)) {
      const cpuStart = process.cpuUsage();
      const t = performance.now();
      await run();
      const wall = (performance.now() - t) / 1000;
      const cpu = cpuSeconds(cpuStart);
      const previous = best[name] ?? { wall: Number.POSITIVE_INFINITY, cpu: Number.POSITIVE_INFINITY };
      best[name] = { wall: Math.min(previous.wall, wall), cpu: Math.min(previous.cpu, cpu) };
    }
  return best;
}
const jpegEvents: AnySourceEvent[] = jpegs.images.map((data, i) => ({
  streamId: 'bench',
  modality: 'video',
  time: i * 100_000,
  seq: i,
  payload: { format: 'jpeg', data },
}));
const decodeAll = (concurrency: number) => async (): Promise<void> => {
  await lastValueFrom(
    from(jpegEvents).pipe(
      decodeCompressedFrames<AnySourceEvent>({ drops: new DropCounter(), concurrency }),
      toArray(),
    ),
  );
};
const jpegAggregator = createFeatureAggregator(DEFAULT_FEATURE_CONFIG).aggregator;
const timings = await measureInTurn({
  plain: async () => {
    for (const jpeg of jpegs.images) await sharp(jpeg).greyscale().resize(16, 12).raw().toBuffer();
  },
  c1: decodeAll(1),
  c2: decodeAll(2),
  c4: decodeAll(4),
  full: async () => {
    const decoded = await lastValueFrom(
      from(jpegEvents).pipe(
        decodeCompressedFrames<AnySourceEvent>({ drops: new DropCounter(), concurrency: 4 }),
        toArray(),
      ),
    );
    for (let i = 0; i < decoded.length; i += 10)
      jpegAggregator.aggregate('video', decoded.slice(i, i + 10), bounds);
  },
});
const n = jpegs.images.length;
const plain = timings['plain']!;
rows.push([
  `baseline: sharp plain pipeline, sequential (${jpegs.kind})`,
  `${fmt(n / plain.wall)} frames/s`,
  `${fmt(n / plain.cpu)} frames per CPU-second`,
]);
for (const concurrency of [1, 2, 4]) {
  const ours = timings[`c${concurrency}`]!;
  rows.push([
    `decodeCompressedFrames, concurrency ${concurrency}`,
    `${fmt(n / ours.wall)} frames/s (${fmt(plain.wall / ours.wall, 2)}× baseline)`,
    `${fmt(n / ours.cpu)} frames per CPU-second (${fmt(plain.cpu / ours.cpu, 2)}×)`,
  ]);
}
const full = timings['full']!;
rows.push([
  'JPEG 320x240 → decode (concurrency 4) → features',
  `${fmt(n / full.wall)} frames/s`,
  `${fmt(n / full.cpu)} frames per CPU-second`,
]);

/** Real 320x240 JPEGs of vtest.avi made by ffmpeg, or sharp-made gradients when ffmpeg is missing. */
async function loadJpegs(count: number): Promise<{ images: Uint8Array[]; kind: string }> {
  const dir = mkdtempSync(join(os.tmpdir(), 'braid-bench-jpeg-'));
  try {
    execFileSync(
      'ffmpeg',
      [
        '-v',
        'error',
        '-nostdin',
        '-i',
        '/usr/share/doc/opencv-doc/examples/data/vtest.avi',
        '-frames:v',
        String(count),
        '-vf',
        'scale=320:240',
        '-q:v',
        '3',
        join(dir, '%04d.jpg'),
      ],
      { stdio: 'ignore' },
    );
    const files = readdirSync(dir).sort();
    if (files.length > 0)
      return {
        images: files.map((f) => new Uint8Array(readFileSync(join(dir, f)))),
        kind: 'vtest.avi 320x240',
      };
  } catch {
    // fall through to generated images
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const images: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const raw = Uint8Array.from({ length: 320 * 240 * 3 }, (_, p) => ((p / 3) % 320) + i);
    images.push(
      new Uint8Array(
        await sharp(raw, { raw: { width: 320, height: 240, channels: 3 } })
          .jpeg()
          .toBuffer(),
      ),
    );
  }
  return { images, kind: 'generated 320x240' };
}

// ---------------------------------------------------------------- text
{
  const sentences = [
    'The quick brown fox jumps over the lazy dog near the river.',
    'Please leave your message after the tone, then hang up.',
    'Ünïcödé wörds and 日本語のテキスト travel through the same path.',
    'Turn left at the second light and park behind the blue van.',
  ];
  const events: AnySourceEvent[] = Array.from({ length: quick ? 20_000 : 100_000 }, (_, i) => ({
    streamId: 'bench',
    modality: 'text',
    time: i,
    seq: i,
    payload: { text: sentences[i % sentences.length]! },
  }));
  const windows: AnySourceEvent[][] = [];
  for (let i = 0; i < events.length; i += 10) windows.push(events.slice(i, i + 10));
  const { aggregator } = createFeatureAggregator(DEFAULT_FEATURE_CONFIG);
  const { seconds } = best(3, () => {
    for (const window of windows) aggregator.aggregate('text', window, bounds);
  });
  rows.push([
    'text hashing (uni+bigrams, 64 dims), 10-event windows',
    `${fmt(events.length / seconds)} events/s`,
    'one core',
  ]);
}

printTable();
