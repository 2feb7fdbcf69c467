import { InvalidOptionError } from '../core/errors.js';
import { parseTopicMapping, type TopicMapping } from '../record/channel-map.js';

/** One `--map TOPIC=STREAM:MODALITY` value; a malformed one is an InvalidOptionError naming --map. */
export function parseMapOption(text: string): TopicMapping {
  try {
    return parseTopicMapping(text);
  } catch (error) {
    throw new InvalidOptionError('map', error instanceof Error ? error.message : String(error));
  }
}
