import { z } from 'zod';
import { InvalidOptionError } from '../core/errors.js';
import { type Micros, parseDuration } from '../core/time.js';

/**
 * How one label's scores become on/off events (see label-state.ts): `on` when a score reaches `on`, `off` when one
 * falls below `off` (hysteresis: between the two nothing changes), each change only once the new state has held for
 * `minOn` / `minOff` µs of capture time.
 */
export interface EventSettings {
  readonly on: number;
  readonly off: number;
  readonly minOn: Micros;
  readonly minOff: Micros;
}

export const DEFAULT_EVENT_SETTINGS: EventSettings = { on: 0.6, off: 0.4, minOn: 0, minOff: 0 };

/** Settings of every label: the ones named, and the default for the rest. */
export interface LabelEventSettings {
  readonly default: EventSettings;
  readonly labels: Readonly<Record<string, EventSettings>>;
}

export const settingsFor = (settings: LabelEventSettings, label: string): EventSettings =>
  settings.labels[label] ?? settings.default;

const threshold = z.number().min(0).max(1);
const micros = z.number().int().nonnegative();

/** Part of a label's settings, as a model directory's events.json or an --events option gives them. */
export const partialSettingsSchema = z
  .object({ on: threshold, off: threshold, minOn: micros, minOff: micros })
  .partial()
  .strict();
export type PartialEventSettings = z.infer<typeof partialSettingsSchema>;

/** A model directory's events.json: `{"labels": {"speech": {"on": 0.7, "minOn": 300000}}}`, durations in µs. */
export const eventsFileSchema = z
  .object({ default: partialSettingsSchema.optional(), labels: z.record(z.string(), partialSettingsSchema) })
  .partial()
  .strict();
export type EventsFile = z.infer<typeof eventsFileSchema>;

/** Settings over a base, checked: `off` above `on` would turn a score between them on and off every window. */
export function completeSettings(
  base: EventSettings,
  over: PartialEventSettings,
  where: string,
): EventSettings {
  const s = { ...base, ...over };
  if (s.off > s.on)
    throw new InvalidOptionError(
      'events',
      `${where}: off=${s.off} is above on=${s.on}; the off threshold must be at most the on threshold`,
    );
  return s;
}

/**
 * The settings of a model's labels: the defaults, then the model directory's events.json, then --events overrides.
 * A label neither the file nor an override may name is one the model does not have: that is an error naming it.
 */
export function resolveEventSettings(
  labels: readonly string[],
  file: EventsFile = {},
  overrides: Readonly<Record<string, PartialEventSettings>> = {},
): LabelEventSettings {
  const known = new Set(labels);
  for (const [label, where] of [
    ...Object.keys(file.labels ?? {}).map((l) => [l, 'events.json'] as const),
    ...Object.keys(overrides).map((l) => [l, '--events'] as const),
  ])
    if (!known.has(label))
      throw new InvalidOptionError(
        'events',
        `${where} names label "${label}", which the model does not have (it has ${labels.join(', ')})`,
      );
  const base = completeSettings(DEFAULT_EVENT_SETTINGS, file.default ?? {}, 'events.json default');
  const out: Record<string, EventSettings> = {};
  for (const label of labels) {
    const fromFile = completeSettings(base, file.labels?.[label] ?? {}, `events.json label "${label}"`);
    out[label] = completeSettings(fromFile, overrides[label] ?? {}, `--events ${label}`);
  }
  return { default: base, labels: out };
}

const KEYS: Record<string, keyof EventSettings> = {
  on: 'on',
  off: 'off',
  'min-on': 'minOn',
  'min-off': 'minOff',
};

/**
 * One `--events LABEL:on=0.7,off=0.3,min-on=300ms,min-off=500ms` option (durations as everywhere in the CLI: 300ms,
 * 1.5s). Options for the same label merge, later keys winning.
 */
export function parseEventsOption(
  text: string,
  into: Record<string, PartialEventSettings> = {},
): Record<string, PartialEventSettings> {
  const colon = text.indexOf(':');
  const label = colon < 0 ? '' : text.slice(0, colon).trim();
  if (label.length === 0 || colon === text.length - 1)
    throw new InvalidOptionError(
      'events',
      `expected LABEL:key=value,... (keys on, off, min-on, min-off), got "${text}"`,
    );
  const settings: Record<string, number> = { ...into[label] };
  for (const pair of text.slice(colon + 1).split(',')) {
    const [rawKey, value, ...rest] = pair.split('=');
    const key = KEYS[(rawKey ?? '').trim()];
    if (key === undefined || value === undefined || rest.length > 0)
      throw new InvalidOptionError(
        'events',
        `"${pair}" in "${text}": expected on=N, off=N, min-on=DURATION or min-off=DURATION`,
      );
    if (key === 'minOn' || key === 'minOff') {
      try {
        settings[key] = parseDuration(value);
      } catch (error) {
        throw new InvalidOptionError('events', `${rawKey} in "${text}": ${(error as Error).message}`);
      }
    } else {
      const n = Number(value.trim());
      if (value.trim() === '' || !(n >= 0 && n <= 1))
        throw new InvalidOptionError(
          'events',
          `${rawKey} in "${text}" must be a score in 0..1, got "${value}"`,
        );
      settings[key] = n;
    }
  }
  return { ...into, [label]: settings };
}
