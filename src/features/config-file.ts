import { readFile } from 'node:fs/promises';
import { InvalidOptionError } from '../core/errors.js';
import { type FeatureConfig, parseFeatureConfig } from './config.js';

/** A feature config from a JSON file named on a command line (`--features`), checked whole. */
export async function readFeatureConfigFile(file: string, option = 'features'): Promise<FeatureConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new InvalidOptionError(option, `cannot read ${file}: ${(error as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new InvalidOptionError(option, `${file} is not JSON: ${(error as Error).message}`);
  }
  return parseFeatureConfig(json, option);
}
