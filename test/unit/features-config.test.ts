import { describe, expect, it } from 'vitest';
import { BraidError, InvalidOptionError } from '../../src/core/errors.js';
import { AUDIO_DESCRIPTORS } from '../../src/features/audio-descriptors.js';
import {
  assertFeatureConfigMatches,
  DEFAULT_FEATURE_CONFIG,
  type FeatureConfig,
  featureLayout,
  parseFeatureConfig,
} from '../../src/features/config.js';

/** A config as JSON from outside: any field may hold anything. */
interface LooseConfig {
  version: unknown;
  audio: Record<string, unknown>;
  video: Record<string, unknown>;
  text: Record<string, unknown>;
}
const clone = (): LooseConfig => JSON.parse(JSON.stringify(DEFAULT_FEATURE_CONFIG)) as LooseConfig;
const typed = (config: LooseConfig): FeatureConfig => config as unknown as FeatureConfig;

function mismatchMessage(expected: FeatureConfig, actual: FeatureConfig): string {
  try {
    assertFeatureConfigMatches(expected, actual);
  } catch (error) {
    expect(error).toBeInstanceOf(BraidError);
    expect((error as BraidError).code).toBe('BRAID_ERR_FEATURE_MISMATCH');
    return (error as Error).message;
  }
  throw new Error('expected a feature mismatch');
}

/** The default config with these audio descriptors, parsed as a --features file is. */
const withAudioDescriptors = (descriptors: readonly string[]): FeatureConfig =>
  parseFeatureConfig({ ...DEFAULT_FEATURE_CONFIG, audio: { ...DEFAULT_FEATURE_CONFIG.audio, descriptors } });
const defaultDescriptors = DEFAULT_FEATURE_CONFIG.audio.descriptors ?? [];

describe('featureLayout', () => {
  it('gives the default dimensions: 100 audio, 13 video, 67 text, 3 mask', () => {
    expect(featureLayout(DEFAULT_FEATURE_CONFIG)).toEqual({
      // log-mel and RMS aggregates, then flux, flatness, centroid (2 each), envelope (3), zcr, stationarity (2 each),
      // harmonicity (5)
      audio: 82 + 13 + 5,
      video: 6 + 7, // no thumbnail; six scalars, then contrast (2), global (3) and coarse motion (2)
      text: 67,
      mask: 3,
      total: 183,
    });
  });

  it('reads a config saved before descriptors existed with the layout it was trained on', () => {
    const saved = {
      ...DEFAULT_FEATURE_CONFIG,
      audio: { ...DEFAULT_FEATURE_CONFIG.audio, descriptors: undefined },
      video: { thumbWidth: 16, thumbHeight: 12, thumbnail: 'mean' },
    };
    const old = parseFeatureConfig(JSON.parse(JSON.stringify(saved)));
    expect(old.audio.descriptors).toBeUndefined();
    expect(featureLayout(old)).toEqual({ audio: 82, video: 198, text: 67, mask: 3, total: 350 });
  });

  it('refuses a descriptor named twice or unknown', () => {
    const twice = {
      ...DEFAULT_FEATURE_CONFIG,
      audio: { ...DEFAULT_FEATURE_CONFIG.audio, descriptors: ['flux', 'flux'] },
    };
    expect(() => parseFeatureConfig(twice)).toThrow(/features\.audio\.descriptors/);
    const unknown = {
      ...DEFAULT_FEATURE_CONFIG,
      video: { ...DEFAULT_FEATURE_CONFIG.video, descriptors: ['optical-flow'] },
    };
    expect(() => parseFeatureConfig(unknown)).toThrow(/features\.video\.descriptors/);
  });

  it('has the five harmonicity values last in the default, and leaves them out when a config does', () => {
    expect(defaultDescriptors.at(-1)).toBe('harmonicity');
    expect(
      featureLayout(withAudioDescriptors(defaultDescriptors.filter((d) => d !== 'harmonicity'))),
    ).toMatchObject({
      audio: 100 - 5,
      total: 183 - 5,
    });
  });

  it('adds twelve segment values (energy, flatness, centroid per quarter window) when named (opt-in)', () => {
    expect(DEFAULT_FEATURE_CONFIG.audio.descriptors).not.toContain('segments');
    expect(featureLayout(withAudioDescriptors([...defaultDescriptors, 'segments']))).toMatchObject({
      audio: 100 + 12,
      total: 183 + 12,
    });
    expect(featureLayout(withAudioDescriptors([...AUDIO_DESCRIPTORS]))).toMatchObject({ audio: 100 + 12 });
  });

  it('follows the config', () => {
    const config: FeatureConfig = {
      ...DEFAULT_FEATURE_CONFIG,
      audio: {
        ...DEFAULT_FEATURE_CONFIG.audio,
        melBands: 64,
        melAggregates: ['mean'],
        rmsAggregates: ['max'],
        descriptors: ['envelope'],
      },
      video: { thumbWidth: 8, thumbHeight: 6, thumbnail: 'last', descriptors: ['global-motion'] },
      text: { ...DEFAULT_FEATURE_CONFIG.text, hashDim: 128 },
    };
    expect(featureLayout(config)).toEqual({ audio: 68, video: 57, text: 131, mask: 3, total: 259 });
  });
});

describe('parseFeatureConfig', () => {
  it('accepts the default config after a JSON round trip', () => {
    expect(parseFeatureConfig(JSON.parse(JSON.stringify(DEFAULT_FEATURE_CONFIG)))).toEqual(
      DEFAULT_FEATURE_CONFIG,
    );
  });

  it.each([
    [(c: LooseConfig) => (c.audio['fftSize'] = 500), 'features.audio.fftSize'],
    [(c: LooseConfig) => (c.audio['frameLength'] = 1024), 'features.audio.frameLength'],
    [(c: LooseConfig) => (c.audio['fMax'] = 9000), 'features.audio.fMax'],
    [(c: LooseConfig) => (c.audio['melAggregates'] = ['median']), 'features.audio.melAggregates.0'],
    [(c: LooseConfig) => (c.video['thumbnail'] = 'first'), 'features.video.thumbnail'],
    [(c: LooseConfig) => (c.text['hashDim'] = 0), 'features.text.hashDim'],
    [(c: LooseConfig) => (c.text['extra'] = true), 'features.text'],
    [(c: LooseConfig) => (c.version = 2), 'features.version'],
  ])('rejects bad field %# naming it', (mutate, option) => {
    const config = clone();
    mutate(config);
    try {
      parseFeatureConfig(config);
      expect.unreachable('expected parseFeatureConfig to throw');
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidOptionError);
      expect((error as InvalidOptionError).option).toBe(option);
    }
  });
});

describe('assertFeatureConfigMatches', () => {
  it('passes for equal configs', () => {
    expect(() => assertFeatureConfigMatches(DEFAULT_FEATURE_CONFIG, typed(clone()))).not.toThrow();
  });

  it('names the first differing field with both values', () => {
    const other = clone();
    other.audio['melBands'] = 64;
    expect(mismatchMessage(DEFAULT_FEATURE_CONFIG, typed(other))).toBe(
      'feature config differs at "audio.melBands": expected 40, got 64',
    );
  });

  it('names a different number of aggregates, or a different one', () => {
    const other = clone();
    other.audio['rmsAggregates'] = ['mean'];
    expect(mismatchMessage(DEFAULT_FEATURE_CONFIG, typed(other))).toBe(
      'feature config differs at "audio.rmsAggregates": expected 2 entries, got 1 entry',
    );
    other.audio['rmsAggregates'] = ['mean', 'std'];
    expect(mismatchMessage(DEFAULT_FEATURE_CONFIG, typed(other))).toBe(
      'feature config differs at "audio.rmsAggregates[1]": expected "max", got "std"',
    );
  });

  it('names a different text option', () => {
    const other = clone();
    other.text['tooLong'] = 'skip';
    expect(mismatchMessage(DEFAULT_FEATURE_CONFIG, typed(other))).toMatch(
      /"text\.tooLong": expected "truncate", got "skip"/,
    );
  });
});
