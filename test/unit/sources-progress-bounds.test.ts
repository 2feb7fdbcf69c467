import { from, lastValueFrom, Subject, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { collectEvents } from '../../src/align/aggregator.js';
import { alignWindows } from '../../src/align/align-windows.js';
import { DEFAULT_WINDOWING } from '../../src/align/windowing.js';
import type { AnySourceEvent, StreamInput } from '../../src/core/events.js';
import type { Window } from '../../src/core/window.js';
import { PcmFramer } from '../../src/sources/pcm-framer.js';
import { withProgressBounds } from '../../src/sources/progress-bounds.js';

const audio = (streamId: string, time: number, samples = 320): AnySourceEvent => ({
  streamId,
  modality: 'audio',
  time,
  seq: time,
  payload: { sampleRate: 16000, channels: 1, samples: new Int16Array(samples) },
});
const video = (streamId: string, time: number): AnySourceEvent => ({
  streamId,
  modality: 'video',
  time,
  seq: time,
  payload: { format: 'gray', width: 2, height: 1, data: new Uint8Array(2) },
});
const text = (streamId: string, time: number): AnySourceEvent => ({
  streamId,
  modality: 'text',
  time,
  seq: time,
  payload: { text: 'x' },
});

const bounded = async (gating: Parameters<typeof withProgressBounds>[0], inputs: StreamInput[]) =>
  lastValueFrom(from(inputs).pipe(withProgressBounds(gating), toArray()));
const progress = (streamId: string, time: number): StreamInput => ({ control: 'progress', streamId, time });

describe('withProgressBounds: in-process capture says how far it has captured', () => {
  it("bounds audio at each frame's end, after the frame", async () => {
    const a = [audio('s', 0), audio('s', 20_000, 160), audio('s', 30_000)];
    expect(await bounded(['audio'], a)).toEqual([
      a[0],
      progress('s', 20_000),
      a[1],
      progress('s', 30_000),
      a[2],
      progress('s', 50_000),
    ]);
  });

  it('bounds at the modality that has reached least, from when every gating modality has sent', async () => {
    const inputs = [
      { control: 'open', streamId: 's', modalities: ['audio', 'video', 'text'] } as const,
      audio('s', 0),
      audio('s', 20_000),
      video('s', 30_000),
      text('s', 31_000),
      audio('s', 40_000),
      video('s', 100_000),
      audio('s', 60_000),
    ];
    const out = await bounded(['audio', 'video'], inputs);
    // Nothing before video's first frame; then video (30 ms) is the lower; then audio (60, 80 ms).
    expect(out).toEqual([
      inputs[0],
      inputs[1],
      inputs[2],
      inputs[3],
      progress('s', 30_000),
      inputs[4],
      inputs[5],
      inputs[6],
      progress('s', 60_000),
      inputs[7],
      progress('s', 80_000),
    ]);
  });

  it('never repeats or lowers a bound, keeps streams apart and starts afresh after close or restart', async () => {
    const inputs: StreamInput[] = [
      audio('a', 0),
      audio('b', 1_000_000),
      audio('a', 0), // a duplicate the aligner will refuse: no new bound
      { control: 'restart', streamId: 'b' },
      audio('b', 5_000),
      { control: 'close', streamId: 'a' },
      audio('a', 0),
    ];
    expect(await bounded(['audio'], inputs)).toEqual([
      inputs[0],
      progress('a', 20_000),
      inputs[1],
      progress('b', 1_020_000),
      inputs[2],
      inputs[3],
      inputs[4],
      progress('b', 25_000),
      inputs[5],
      inputs[6],
      progress('a', 20_000),
    ]);
  });

  it('passes errors and completion on', async () => {
    const input$ = new Subject<StreamInput>();
    const seen: string[] = [];
    input$.pipe(withProgressBounds(['audio'])).subscribe({ error: (e: Error) => seen.push(e.message) });
    input$.error(new Error('recorder died'));
    expect(seen).toEqual(['recorder died']);
  });

  it('closes a live window as its last sample is captured, where without bounds it waits for later audio', () => {
    // Microphone audio as the recorder delivers it: 20 ms chunks of PCM16, framed and stamped by sample count.
    const run = (bounds: boolean) => {
      const framer = new PcmFramer({
        streamId: 'mic',
        sampleRate: 16000,
        frameSamples: 320,
        origin: 0,
        clock: () => 0,
      });
      const input$ = new Subject<StreamInput>();
      const windows: Window<readonly AnySourceEvent[]>[] = [];
      (bounds ? input$.pipe(withProgressBounds(['audio'])) : input$)
        .pipe(alignWindows({ ...DEFAULT_WINDOWING, phase: 'aligned', aggregator: collectEvents }))
        .subscribe((w) => windows.push(w));
      input$.next({ control: 'open', streamId: 'mic', modalities: ['audio'] });
      const chunk = new Uint8Array(640);
      // 25 chunks: exactly the first 500 ms window.
      for (let i = 0; i < 25; i++) for (const e of framer.push(chunk)) input$.next(e);
      return windows;
    };
    expect(run(false)).toHaveLength(0); // the 40 ms out-of-orderness: waits for audio from 540 ms on
    const [first] = run(true);
    expect(first).toMatchObject({ start: 0, end: 500_000 });
    expect(first?.contents.audio).toHaveLength(25);
  });
});
