import { Subject } from 'rxjs';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import type { AnySourceEvent, Modality, StreamInput } from '../../src/core/events.js';
import { mulberry32 } from '../../src/core/random.js';
import type { Prediction } from '../../src/core/window.js';
import type { FusedWindow } from '../../src/model/runtime.js';
import { PredictionPipelineRunner } from '../../src/pipeline/prediction-pipeline.js';
import { untrainedModel } from '../helpers/demo-pipeline.js';

/**
 * Hours of stream time through the whole live pipeline — JPEG decoding, alignment, features, fusion, the model — at
 * full speed. The input repeats every minute, so every window's fused features and presence must repeat exactly,
 * hour after hour, and nothing may ever be late, forced closed or dropped. A pipeline that degrades with time (the
 * aligner's accounting once drifted after ~20,000 events, closing every window early and losing the video) fails.
 */

const HOURS = Number(process.env['BRAID_LONG_RUN_HOURS'] ?? 3);
const PERIOD = 60_000_000; // µs: the input repeats every minute
const HOP = 500_000;
const WINDOWS_PER_PERIOD = PERIOD / HOP;
const T0 = 1_700_000_400_000_000; // a whole number of periods since the epoch, so grids line up with periods
const BATCH = 5_000_000; // fed 5 s at a time, waiting for the pipeline in between (replay-style backpressure)

interface Period {
  readonly events: AnySourceEvent[];
}

/** One minute of three streams, times relative to the period start, seqs from 0. */
async function makePeriod(): Promise<Period> {
  const rand = mulberry32(99);
  const events: AnySourceEvent[] = [];
  const seq = new Map<string, number>();
  const next = (key: string) => {
    const n = seq.get(key) ?? 0;
    seq.set(key, n + 1);
    return n;
  };
  // Stream a: audio (tone bursts over noise, 100 ms frames), raw gray video at 5 fps, text every 7 s.
  // Stream b: JPEG video at 0.5 fps, labels every 10 s.
  // Stream c: raw rgb video at 5 fps, text every 5 s (no audio).
  for (const [streamId, hz] of [['long-a', 440]] as const)
    for (let f = 0; f < PERIOD / 100_000; f++) {
      const samples = new Int16Array(1600);
      const on = Math.floor(f / 13) % 3 !== 0;
      for (let i = 0; i < samples.length; i++)
        samples[i] = Math.round(
          (on ? 6000 * Math.sin((2 * Math.PI * hz * (f * 1600 + i)) / 16000) : 0) + 400 * (rand() - 0.5),
        );
      events.push({
        streamId,
        modality: 'audio',
        time: f * 100_000,
        seq: next(`${streamId}/audio`),
        payload: { sampleRate: 16000, channels: 1, samples },
      });
    }
  for (let f = 0; f < PERIOD / 200_000; f++) {
    const gray = new Uint8Array(64 * 48);
    for (let y = 0; y < 48; y++) gray[y * 64 + ((f * 3) % 64)] = 255;
    events.push({
      streamId: 'long-a',
      modality: 'video',
      time: f * 200_000 + 7,
      seq: next('long-a/video'),
      payload: { format: 'gray', width: 64, height: 48, data: gray },
    });
    const rgb = new Uint8Array(32 * 24 * 3).map(() => Math.floor(rand() * 256));
    events.push({
      streamId: 'long-c',
      modality: 'video',
      time: f * 200_000 + 11,
      seq: next('long-c/video'),
      payload: { format: 'rgb', width: 32, height: 24, data: rgb },
    });
  }
  for (let f = 0; f < PERIOD / 2_000_000; f++) {
    const jpeg = await sharp({
      create: {
        width: 64,
        height: 48,
        channels: 3,
        background: { r: (f * 37) % 256, g: 90, b: (f * 11) % 256 },
      },
    })
      .jpeg({ quality: 80 })
      .toBuffer();
    events.push({
      streamId: 'long-b',
      modality: 'video',
      time: f * 2_000_000 + 3,
      seq: next('long-b/video'),
      payload: { format: 'jpeg', data: new Uint8Array(jpeg) },
    });
  }
  for (let t = 1_000_000; t < PERIOD; t += 7_000_000)
    events.push({
      streamId: 'long-a',
      modality: 'text',
      time: t,
      seq: next('long-a/text'),
      payload: { text: `a says ${t}` },
    });
  for (let t = 2_000_000; t < PERIOD; t += 5_000_000)
    events.push({
      streamId: 'long-c',
      modality: 'text',
      time: t,
      seq: next('long-c/text'),
      payload: { text: 'c here' },
    });
  for (let t = 0; t < PERIOD; t += 10_000_000)
    events.push({
      streamId: 'long-b',
      modality: 'label',
      time: t,
      seq: next('long-b/label'),
      payload: { labels: { speech: (t / 10_000_000) % 2 } },
    });
  events.sort((a, b) => a.time - b.time || (a.streamId < b.streamId ? -1 : 1));
  return { events };
}

/** Period k of the input: times shifted by k periods, seqs continuing. */
function shifted(period: Period, k: number, perPeriodSeqs: Map<string, number>): AnySourceEvent[] {
  return period.events.map((e) => ({
    ...e,
    time: T0 + k * PERIOD + e.time,
    seq: e.seq + k * (perPeriodSeqs.get(`${e.streamId}/${e.modality}`) ?? 0),
  })) as AnySourceEvent[];
}

describe(`${HOURS} hours of stream time through the live pipeline`, () => {
  let period: Period;
  beforeAll(async () => {
    period = await makePeriod();
  });

  it('gives the same windows every minute, and never a late, forced or dropped one', async () => {
    const runner = await PredictionPipelineRunner.create({ model: untrainedModel(), backend: 'cpu-fused' });
    const seqs = new Map<string, number>();
    for (const e of period.events) {
      const key = `${e.streamId}/${e.modality}`;
      seqs.set(key, Math.max(seqs.get(key) ?? 0, e.seq + 1));
    }
    const streams = ['long-a', 'long-b', 'long-c'];
    const periods = (HOURS * 3_600_000_000) / PERIOD;
    const inputEnd = T0 + periods * PERIOD;
    const reference = new Map<string, { x: Float32Array; present: string }>();
    const mismatches: string[] = [];
    let windows = 0;
    let compared = 0;
    const check = (w: FusedWindow) => {
      windows++;
      const k = Math.floor((w.start - T0) / PERIOD);
      // The first period's first windows reach back before the input starts; the last ones past its end.
      if (k < 1 || w.end > inputEnd) return;
      const key = `${w.streamId}/${((w.index % WINDOWS_PER_PERIOD) + WINDOWS_PER_PERIOD) % WINDOWS_PER_PERIOD}`;
      const present = JSON.stringify(w.present);
      const ref = reference.get(key);
      if (ref === undefined) {
        reference.set(key, { x: w.x.slice(), present });
        return;
      }
      compared++;
      if (ref.present !== present)
        mismatches.push(`${key} in period ${k}: present ${present} != ${ref.present}`);
      else if (!ref.x.every((v, i) => Object.is(v, w.x[i])))
        mismatches.push(`${key} in period ${k}: features differ`);
    };
    const input$ = new Subject<StreamInput>();
    const lastEnd = new Map<string, number>();
    let predictions = 0;
    let wake: (() => void) | undefined;
    const finished = new Promise<void>((resolve, reject) => {
      runner
        .run(input$, {
          windows: check,
          refused: (r) => mismatches.push(`refused: ${r.reason}: ${r.message}`),
        })
        .subscribe({
          next: (p: Prediction) => {
            predictions++;
            lastEnd.set(p.streamId, p.windowEnd);
            wake?.();
          },
          error: reject,
          complete: resolve,
        });
    });
    let failure: unknown;
    finished.catch((error: unknown) => {
      failure = error;
      wake?.();
    });
    // Backpressure as a replay needs it: before the next batch goes in, each stream's window around its last event
    // of the batch before must have been predicted, so the JPEG decoder never holds more than two batches.
    let behind = new Map<string, number>();
    const caughtUp = () => [...behind].every(([s, t]) => (lastEnd.get(s) ?? 0) > t);
    const countersAt: Record<string, number>[] = [];
    const modalities: Record<string, Modality[]> = {
      'long-a': ['audio', 'video', 'text'],
      'long-b': ['video', 'label'],
      'long-c': ['video', 'text'],
    };
    for (const s of streams) input$.next({ control: 'open', streamId: s, modalities: modalities[s] });
    for (let k = 0; k < periods; k++) {
      const events = shifted(period, k, seqs);
      for (let from = 0; from < PERIOD; from += BATCH) {
        const start = T0 + k * PERIOD + from;
        const last = new Map<string, number>();
        for (const e of events)
          if (e.time >= start && e.time < start + BATCH) {
            input$.next(e);
            last.set(e.streamId, e.time);
          }
        while (!caughtUp() && failure === undefined)
          await new Promise<void>((resolve, reject) => {
            wake = resolve;
            setTimeout(
              () =>
                reject(
                  new Error(
                    `stalled: waiting for ${JSON.stringify([...behind])}, have ${JSON.stringify([...lastEnd])}`,
                  ),
                ),
              30_000,
            ).unref();
          });
        wake = undefined;
        if (failure !== undefined) throw failure;
        behind = last;
      }
      if (k === 5 || k === periods - 1) countersAt.push({ ...runner.stats().counters });
    }
    input$.complete();
    await finished;

    expect(mismatches.slice(0, 10)).toEqual([]);
    // Every window of a minute (those holding anything: the 0.5 fps camera fills one in four) seen again each minute.
    expect(reference.size).toBeGreaterThan(WINDOWS_PER_PERIOD * 2);
    expect(compared).toBeGreaterThan((periods - 3) * reference.size);
    const [early, late] = countersAt as [Record<string, number>, Record<string, number>];
    for (const name of [
      'late_audio',
      'late_video',
      'late_text',
      'late_label',
      'partially_late',
      'forced_closes',
    ])
      expect({ name, early: early[name], late: late[name] }).toEqual({ name, early: 0, late: 0 });
    for (const [name, value] of Object.entries(late))
      if (/^(rejected_|bad_frame_|decode_dropped_|model_dropped_)/.test(name))
        expect({ name, value }).toEqual({ name, value: 0 });
    expect(late['model_resets_gap'] ?? 0).toBe(0);
    expect(predictions).toBe(windows);
  }, 240_000);
});
