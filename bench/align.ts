// Aligner throughput and emission delay. Run: npx tsx bench/align.ts
// Streams each send audio at 100 frames/s (10 ms, 160 samples), video at 15 fps (raw gray 64x48) and text at 1/s,
// merged in capture-time order as a live server receives them. One core (the loop is single-threaded).
import { collectEvents } from '../src/align/aggregator.js';
import { WindowAligner } from '../src/align/window-aligner.js';
import { type AnySourceEvent, validateEvent } from '../src/core/events.js';
import { ms } from '../src/core/time.js';

const SAMPLES = new Int16Array(160);
const FRAME = new Uint8Array(64 * 48);

function makeEvents(streams: number, durationS: number): AnySourceEvent[] {
  const events: AnySourceEvent[] = [];
  const t0 = 1_700_000_000_000_000;
  // Ten ms ticks: every tick has audio, every 1/15 s video, every second text.
  for (let tick = 0; tick < durationS * 100; tick++) {
    const time = t0 + tick * 10_000;
    for (let s = 0; s < streams; s++) {
      const streamId = `stream-${s}`;
      events.push({
        streamId,
        modality: 'audio',
        time,
        seq: tick,
        payload: { sampleRate: 16000, channels: 1, samples: SAMPLES },
      });
      if (tick % 20 === 0 || tick % 20 === 7 || tick % 20 === 13) {
        const vt = t0 + Math.floor((tick * 10_000) / 66_667) * 66_667;
        events.push({
          streamId,
          modality: 'video',
          time: vt,
          seq: tick,
          payload: { format: 'gray', width: 64, height: 48, data: FRAME },
        });
      }
      if (tick % 100 === 50)
        events.push({ streamId, modality: 'text', time, seq: tick, payload: { text: 'hello there' } });
    }
  }
  return events;
}

const options = { size: ms(500), outOfOrderness: ms(20), aggregator: collectEvents };

function throughput(events: AnySourceEvent[]): { eventsPerS: number; windows: number } {
  let windows = 0;
  const aligner = new WindowAligner(options, { window: () => windows++, late: () => {}, rejected: () => {} });
  const t = performance.now();
  for (const e of events) aligner.push(e);
  aligner.flushAll();
  const elapsed = (performance.now() - t) / 1000;
  return { eventsPerS: events.length / elapsed, windows };
}

/** Baseline in the same run: what validating and grouping each event costs, with no windowing at all. */
function baseline(events: AnySourceEvent[]): number {
  const groups = new Map<string, AnySourceEvent[]>();
  const t = performance.now();
  for (const e of events) {
    const v = validateEvent(e);
    let g = groups.get(v.streamId);
    if (g === undefined) groups.set(v.streamId, (g = []));
    g.push(v);
  }
  return events.length / ((performance.now() - t) / 1000);
}

/** Delay from the push of the event that moved the watermark past a window's end to that window's emission. */
function emissionDelay(events: AnySourceEvent[]): { p50: number; p99: number; max: number } {
  const delays: number[] = [];
  let pushStart = 0;
  const aligner = new WindowAligner(options, {
    window: () => delays.push(performance.now() - pushStart),
    late: () => {},
    rejected: () => {},
  });
  for (const e of events) {
    pushStart = performance.now();
    aligner.push(e);
  }
  delays.sort((a, b) => a - b);
  const q = (p: number) => delays[Math.min(delays.length - 1, Math.floor(p * delays.length))] ?? Number.NaN;
  return { p50: q(0.5), p99: q(0.99), max: delays[delays.length - 1] ?? Number.NaN };
}

const rows: string[] = [];
for (const [streams, duration] of [
  [1, 600],
  [64, 20],
  [1024, 2],
] as const) {
  const events = makeEvents(streams, duration);
  throughput(events); // warm-up
  const runs = [throughput(events), throughput(events), throughput(events)];
  const best = Math.max(...runs.map((r) => r.eventsPerS));
  const base = Math.max(baseline(events), baseline(events));
  const delay = emissionDelay(events);
  rows.push(
    `| ${streams} | ${events.length.toLocaleString('en')} | ${Math.round(best).toLocaleString('en')} | ${Math.round(base).toLocaleString('en')} | ${(best / base).toFixed(2)} | ${(delay.p50 * 1000).toFixed(1)} | ${(delay.p99 * 1000).toFixed(1)} | ${(delay.max * 1000).toFixed(0)} |`,
  );
}
console.log(
  '| streams | events | aligner events/s | baseline (validate+group) events/s | ratio | emit delay p50 µs | p99 µs | max µs |',
);
console.log('|---|---|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
