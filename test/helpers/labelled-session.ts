import type { AnySourceEvent } from '../../src/core/events.js';
import { McapRecorder } from '../../src/record/recorder.js';

export const T0 = 1_700_000_000_000_000;
export const S = 1_000_000;

export interface SyntheticOptions {
  readonly streamId?: string;
  readonly seconds?: number;
  readonly sampleRate?: number;
  readonly labels?: boolean;
  /** A stretch [from, to) in seconds with no events at all. */
  readonly gap?: readonly [number, number];
  readonly start?: number;
}

/**
 * A labelled session of one stream: a 440 Hz tone (the "speech") during the first half of every 2 s, quiet noise
 * otherwise; 8×6 gray frames at 10 fps that move during odd seconds; a text event every 1.5 s. Labels change with
 * the tone (`speech`) and with the frames (`motion`).
 */
export function syntheticSession(options: SyntheticOptions = {}): AnySourceEvent[] {
  const streamId = options.streamId ?? 'cam';
  const seconds = options.seconds ?? 6;
  const rate = options.sampleRate ?? 16_000;
  const start = T0 + (options.start ?? 0) * S;
  const inGap = (t: number) =>
    options.gap !== undefined && t >= start + options.gap[0] * S && t < start + options.gap[1] * S;
  const events: AnySourceEvent[] = [];
  const frame = rate / 50;
  let noise = 12_345;
  for (let i = 0, seq = 0; i * frame < seconds * rate; i++) {
    const time = start + Math.floor((i * frame * S) / rate);
    if (inGap(time)) continue;
    const samples = new Int16Array(frame);
    for (let k = 0; k < frame; k++) {
      const n = i * frame + k;
      const tone = Math.floor(n / rate) % 2 === 0 && n % rate < rate / 2;
      noise = (noise * 1_103_515_245 + 12_345) % 2_147_483_648;
      samples[k] = tone ? Math.round(8000 * Math.sin((2 * Math.PI * 440 * n) / rate)) : (noise % 200) - 100;
    }
    events.push({
      streamId,
      modality: 'audio',
      time,
      seq: seq++,
      payload: { sampleRate: rate, channels: 1, samples },
    });
  }
  for (let f = 0, seq = 0; f < seconds * 10; f++) {
    const time = start + f * 100_000;
    if (inGap(time)) continue;
    const moving = Math.floor(f / 10) % 2 === 1;
    const data = Uint8Array.from({ length: 48 }, (_, k) => (k * 5 + (moving ? f * 37 : 0)) % 256);
    events.push({
      streamId,
      modality: 'video',
      time,
      seq: seq++,
      payload: { format: 'gray', width: 8, height: 6, data },
    });
  }
  for (let t = 0.7, seq = 0; t < seconds; t += 1.5) {
    const time = start + Math.round(t * S);
    if (!inGap(time))
      events.push({ streamId, modality: 'text', time, seq: seq++, payload: { text: `hello number ${seq}` } });
  }
  if (options.labels !== false)
    for (let k = 0; k < seconds * 2; k++) {
      const time = start + k * 500_000;
      const speech = k % 4 === 0 ? 1 : 0;
      const motion = Math.floor(k / 2) % 2;
      events.push({ streamId, modality: 'label', time, seq: k, payload: { labels: { speech, motion } } });
    }
  return events.sort((a, b) => a.time - b.time);
}

export async function writeRecording(file: string, events: readonly AnySourceEvent[]): Promise<string> {
  const recorder = await McapRecorder.create(file, { overwrite: true });
  try {
    for (const event of events) await recorder.write(event, event.time);
  } finally {
    await recorder.close();
  }
  return file;
}
