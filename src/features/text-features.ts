import { BadFrameError } from '../core/errors.js';
import type { AnySourceEvent } from '../core/events.js';
import type { DropCounter } from '../sources/drop-counter.js';
import { TEXT_EXTRA_FEATURES, type TextFeatureConfig } from './config.js';

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const SPACE = 0x20;

/** Unicode word characters: letters, marks, numbers and connector punctuation (`_`). */
const WORD_SOURCE = '[\\p{L}\\p{M}\\p{N}\\p{Pc}]+';
const wordPattern = (): RegExp => new RegExp(WORD_SOURCE, 'gu');

const fnvByte = (hash: number, byte: number): number => Math.imul(hash ^ byte, FNV_PRIME) >>> 0;

/**
 * Continues a 32-bit FNV-1a hash over the UTF-8 bytes of text[start, end) without building a substring or a byte
 * array, so hashing a bigram is hashing its first word, a space, then its second word.
 */
export function fnv1aUpdate(hash: number, text: string, start = 0, end = text.length): number {
  let h = hash;
  for (let i = start; i < end; i++) {
    let c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < end) {
      const low = text.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
        i++;
      }
    }
    if (c < 0x80) h = fnvByte(h, c);
    else if (c < 0x800) {
      h = fnvByte(h, 0xc0 | (c >> 6));
      h = fnvByte(h, 0x80 | (c & 0x3f));
    } else if (c < 0x10000) {
      h = fnvByte(h, 0xe0 | (c >> 12));
      h = fnvByte(h, 0x80 | ((c >> 6) & 0x3f));
      h = fnvByte(h, 0x80 | (c & 0x3f));
    } else {
      h = fnvByte(h, 0xf0 | (c >> 18));
      h = fnvByte(h, 0x80 | ((c >> 12) & 0x3f));
      h = fnvByte(h, 0x80 | ((c >> 6) & 0x3f));
      h = fnvByte(h, 0x80 | (c & 0x3f));
    }
  }
  return h;
}

/** FNV-1a 32-bit of a string's UTF-8 bytes (unsigned). */
export const fnv1a32 = (text: string): number => fnv1aUpdate(FNV_OFFSET, text);

/** The tokenizer's words: the text lowercased, split into runs of Unicode word characters. */
export function tokenize(text: string): string[] {
  return text.toLowerCase().match(wordPattern()) ?? [];
}

function codePointCount(text: string): number {
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    // A low surrogate that follows a high one is the second half of the same code point.
    if (c >= 0xdc00 && c <= 0xdfff && i > 0) {
      const previous = text.charCodeAt(i - 1);
      if (previous >= 0xd800 && previous <= 0xdbff) continue;
    }
    count++;
  }
  return count;
}

/** The first `max` UTF-16 code units, one fewer when the cut would split a surrogate pair. */
function truncate(text: string, max: number): string {
  const last = text.charCodeAt(max - 1);
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? max - 1 : max);
}

/**
 * One window's text features, the sum over its text events of
 * [signed hashed word n-grams (hashDim) | log1p(code points) | log1p(words) | 1].
 * Each unigram and bigram ("w1 w2") adds ±1 at FNV-1a(utf8) mod hashDim, the sign taken from the hash's top bit,
 * so colliding n-grams tend to cancel instead of piling up. Nothing is downloaded: no vocabulary, no model.
 */
export class TextFeaturizer {
  readonly size: number;
  readonly #config: TextFeatureConfig;
  readonly #drops: DropCounter;
  /** Own instance: a global regex carries lastIndex between exec calls. */
  readonly #word = wordPattern();

  constructor(config: TextFeatureConfig, drops: DropCounter) {
    this.#config = config;
    this.#drops = drops;
    this.size = config.hashDim + TEXT_EXTRA_FEATURES;
  }

  featurize(events: readonly AnySourceEvent[]): Float32Array {
    const sums = new Float64Array(this.size);
    let used = 0;
    for (const event of events) {
      const text = this.#usable(event);
      if (text === null) continue;
      this.#add(text, sums);
      used++;
    }
    return used === 0 ? new Float32Array(0) : Float32Array.from(sums);
  }

  #add(text: string, sums: Float64Array): void {
    const dim = this.#config.hashDim;
    const bigrams = this.#config.maxNgram >= 2;
    const lower = text.toLowerCase();
    let words = 0;
    let previous = 0;
    const word = this.#word;
    word.lastIndex = 0;
    for (let match = word.exec(lower); match !== null; match = word.exec(lower)) {
      const start = match.index;
      const end = start + match[0].length;
      const unigram = fnv1aUpdate(FNV_OFFSET, lower, start, end);
      addSigned(sums, unigram, dim);
      if (bigrams && words > 0)
        addSigned(sums, fnv1aUpdate(fnvByte(previous, SPACE), lower, start, end), dim);
      previous = unigram;
      words++;
    }
    sums[dim] = (sums[dim] as number) + Math.log1p(codePointCount(text));
    sums[dim + 1] = (sums[dim + 1] as number) + Math.log1p(words);
    sums[dim + 2] = (sums[dim + 2] as number) + 1;
  }

  #usable(event: AnySourceEvent): string | null {
    if (event.modality !== 'text')
      return this.#drop(event, 'wrong_modality', `expected a text event, got ${event.modality}`);
    const text = event.payload.text;
    if (typeof text !== 'string') return this.#drop(event, 'bad_text', 'text payload.text must be a string');
    const max = this.#config.maxChars;
    if (text.length <= max) return text;
    const action = this.#config.tooLong === 'truncate' ? 'truncated' : 'skipped';
    this.#drops.record(
      new BadFrameError(
        'text_too_long',
        `text of ${text.length} UTF-16 code units exceeds maxChars ${max}: ${action}`,
      ),
      event,
    );
    return this.#config.tooLong === 'truncate' ? truncate(text, max) : null;
  }

  #drop(event: AnySourceEvent, reason: string, message: string): null {
    this.#drops.record(new BadFrameError(reason, message), event);
    return null;
  }
}

function addSigned(sums: Float64Array, hash: number, dim: number): void {
  const index = hash % dim;
  sums[index] = (sums[index] as number) + (hash >>> 31 === 1 ? -1 : 1);
}
