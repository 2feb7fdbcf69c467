import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readModelEvents } from '../../src/events/model-events.js';
import {
  DEFAULT_EVENT_SETTINGS,
  parseEventsOption,
  resolveEventSettings,
} from '../../src/events/settings.js';

describe('events: settings', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('parses --events LABEL:on=..,off=..,min-on=..,min-off=.. with the CLI durations, merging per label', () => {
    const a = parseEventsOption('speech:on=0.7,off=0.3,min-on=300ms,min-off=0.5s');
    expect(a).toEqual({ speech: { on: 0.7, off: 0.3, minOn: 300_000, minOff: 500_000 } });
    expect(parseEventsOption('speech:off=0.2', a)).toEqual({
      speech: { on: 0.7, off: 0.2, minOn: 300_000, minOff: 500_000 },
    });
  });

  it.each([
    ['speech', /LABEL:key=value/],
    ['speech:', /LABEL:key=value/],
    [':on=0.5', /LABEL:key=value/],
    ['speech:loud=1', /"loud=1"/],
    ['speech:on=1.5', /on in "speech:on=1.5" must be a score in 0..1/],
    ['speech:on=', /must be a score/],
    ['speech:min-on=soon', /min-on in .* not a duration/],
  ])('refuses %s with a message naming the problem', (text, message) => {
    expect(() => parseEventsOption(text)).toThrow(message);
  });

  it('defaults 0.6 / 0.4, then events.json, then --events; unknown labels and off above on are errors', () => {
    const s = resolveEventSettings(
      ['speech', 'motion'],
      { default: { minOff: 100 }, labels: { speech: { on: 0.8 } } },
      { speech: { minOn: 5 } },
    );
    expect(s.labels['speech']).toEqual({ on: 0.8, off: 0.4, minOn: 5, minOff: 100 });
    expect(s.labels['motion']).toEqual({ ...DEFAULT_EVENT_SETTINGS, minOff: 100 });
    expect(() => resolveEventSettings(['speech'], {}, { typing: { on: 0.5 } })).toThrow(
      /--events names label "typing", which the model does not have \(it has speech\)/,
    );
    expect(() => resolveEventSettings(['speech'], { labels: { speech: { off: 0.9 } } })).toThrow(
      /events.json label "speech": off=0.9 is above on=0.6/,
    );
  });

  it("reads a model directory's events.json, and nothing when it has none", async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'braid-events-'));
    expect(await readModelEvents(dir)).toEqual({});
    await writeFile(path.join(dir, 'events.json'), JSON.stringify({ labels: { speech: { on: 0.7 } } }));
    expect(await readModelEvents(dir)).toEqual({ labels: { speech: { on: 0.7 } } });
    await writeFile(path.join(dir, 'events.json'), JSON.stringify({ labels: { speech: { on: 2 } } }));
    await expect(readModelEvents(dir)).rejects.toThrow(/events.json: labels.speech.on: /);
    await writeFile(path.join(dir, 'events.json'), '{');
    await expect(readModelEvents(dir)).rejects.toThrow(/is not valid JSON/);
  });
});
