import { lastValueFrom, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { type AnySourceEvent, MODALITIES, validateEvent } from '../../src/core/events.js';
import { createFeatureAggregator, DEFAULT_FEATURE_CONFIG } from '../../src/features/index.js';
import { syntheticEvents, syntheticSource } from '../../src/sources/synthetic.js';

const options = { streamId: 'syn', seed: 42, duration: 4_000_000 };
const rank = (e: AnySourceEvent): number => MODALITIES.indexOf(e.modality);

describe('syntheticEvents', () => {
  it('is deterministic from the seed and differs across seeds', () => {
    const a = [...syntheticEvents(options)];
    const b = [...syntheticEvents(options)];
    expect(b).toEqual(a);
    expect([...syntheticEvents({ ...options, seed: 43 })]).not.toEqual(a);
  });

  it('emits valid events of every modality in (time, modality) order with per-modality seq', () => {
    const events = [...syntheticEvents(options)];
    for (const e of events) validateEvent(e);
    for (let i = 1; i < events.length; i++) {
      const [p, c] = [events[i - 1]!, events[i]!];
      expect(p.time < c.time || (p.time === c.time && rank(p) <= rank(c))).toBe(true);
    }
    const counts = Object.fromEntries(
      MODALITIES.map((m) => [m, events.filter((e) => e.modality === m).length]),
    );
    expect(counts).toEqual({ audio: 200, video: 40, text: 8, label: 4 });
    const audio = events.filter((e) => e.modality === 'audio');
    expect(audio.map((e) => e.seq)).toEqual(audio.map((_, i) => i));
    expect(audio.map((e) => e.time)).toEqual(audio.map((_, i) => i * 20_000));
  });

  it('follows one segment pattern in every modality: labels match audio energy, text words and motion', () => {
    const events = [...syntheticEvents({ ...options, duration: 8_000_000, seed: 7 })];
    const labels = events
      .filter((e) => e.modality === 'label')
      .map((e) => (e.payload as { labels: { active: number } }).labels.active);
    expect(new Set(labels)).toEqual(new Set([0, 1]));
    const { aggregator } = createFeatureAggregator(DEFAULT_FEATURE_CONFIG);
    const bounds = { streamId: 'syn', index: 0, start: 0, end: 0 };
    labels.forEach((active, k) => {
      const inSegment = (e: AnySourceEvent) => e.time >= k * 1_000_000 && e.time < (k + 1) * 1_000_000;
      const rms = aggregator.aggregate(
        'audio',
        events.filter((e) => e.modality === 'audio' && inSegment(e)),
        bounds,
      )[80]!;
      expect(rms > 0.1).toBe(active === 1);
      const video = aggregator.aggregate(
        'video',
        events.filter((e) => e.modality === 'video' && inSegment(e)),
        bounds,
      );
      // Motion mean (first in the block: the default config has no thumbnail): the bar moves 2 px a frame when
      // active; otherwise only ±4-level pixel noise changes.
      expect(video[0]! > 0.02).toBe(active === 1);
      const words = events
        .filter((e) => e.modality === 'text' && inSegment(e))
        .map((e) => (e.payload as { text: string }).text);
      for (const text of words) expect(/beep|tone|loud|signal|ring/.test(text)).toBe(active === 1);
    });
  });

  it('produces only the modalities asked for, in rgb when asked', () => {
    const events = [
      ...syntheticEvents({
        ...options,
        modalities: ['video'],
        video: { format: 'rgb', width: 8, height: 6 },
      }),
    ];
    expect(new Set(events.map((e) => e.modality))).toEqual(new Set(['video']));
    expect(events[0]!.payload).toMatchObject({ format: 'rgb', width: 8, height: 6 });
  });
});

describe('syntheticSource', () => {
  it('emits the same events as the generator', async () => {
    expect(await lastValueFrom(syntheticSource(options).pipe(toArray()))).toEqual([
      ...syntheticEvents(options),
    ]);
  });

  it('paces events on the wall clock from the subscription time', async () => {
    const started = Date.now();
    const events = await lastValueFrom(
      syntheticSource({ ...options, duration: 300_000, modalities: ['video'], pace: 'realtime' }).pipe(
        toArray(),
      ),
    );
    expect(events).toHaveLength(3);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(Math.abs(events[0]!.time / 1000 - started)).toBeLessThan(1_000);
    expect(events[2]!.time - events[0]!.time).toBe(200_000);
  });

  it('paces on the clock it is given: its start is the origin, and a clock running ahead releases events at once', async () => {
    let now = 5_000_000_000;
    const clock = () => {
      now += 10_000_000; // ten seconds pass at every reading
      return now;
    };
    const started = Date.now();
    const events = await lastValueFrom(
      syntheticSource({
        ...options,
        duration: 10_000_000,
        modalities: ['video'],
        pace: 'realtime',
        clock,
      }).pipe(toArray()),
    );
    expect(events).toHaveLength(100);
    expect(events[0]!.time).toBe(5_010_000_000);
    expect(events[99]!.time - events[0]!.time).toBe(9_900_000);
    // Ten seconds of stream on the injected clock; the wall clock never had to wait for it.
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('rejects bad options naming them', () => {
    expect(() => syntheticSource({ ...options, duration: -1 })).toThrow(/option "duration"/);
    expect(() => syntheticSource({ ...options, pace: 'slow' as 'none' })).toThrow(/option "pace"/);
    expect(() => syntheticSource({ ...options, video: { fps: 0 } })).toThrow(/option "video\.fps"/);
  });
});
