import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { InvalidOptionError } from '../core/errors.js';
import { type EventsFile, eventsFileSchema } from './settings.js';

/** The file in a model directory with the model's own event settings (optional). */
export const EVENTS_JSON = 'events.json';

/** A model directory's events.json, checked; `{}` when the model ships none. */
export async function readModelEvents(dir: string): Promise<EventsFile> {
  const file = path.join(dir, EVENTS_JSON);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new InvalidOptionError('events', `cannot read ${file}: ${(error as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new InvalidOptionError('events', `${file} is not valid JSON: ${(error as Error).message}`);
  }
  const parsed = eventsFileSchema.safeParse(json);
  if (!parsed.success)
    throw new InvalidOptionError(
      'events',
      `${file}: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
    );
  return parsed.data;
}
