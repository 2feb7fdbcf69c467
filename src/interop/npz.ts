import { unzipSync, type Zippable, zipSync } from 'fflate';
import { InteropError } from './errors.js';
import { encodeNpy, type NpyArray } from './npy.js';

export interface NpzArray {
  /** numpy.load's key: the member is written as `<key>.npy`. */
  readonly key: string;
  readonly values: NpyArray;
  readonly shape: readonly number[];
}

/** Plain ZIP without ZIP64 (fflate writes none): sizes and offsets must fit in 32 bits. */
const ZIP_LIMIT = 0xffff_ffff;
/** A fixed member time, so one export of the same recordings gives the same bytes. */
const MTIME = new Date(2000, 0, 1);

/**
 * An .npz as numpy.savez_compressed writes one: a ZIP of `<key>.npy` members, deflated, plus any extra raw members
 * (numpy.load hands a member that is not .npy back as bytes). Throws InteropError `too_large` past what a ZIP
 * without ZIP64 holds.
 */
export function encodeNpz(
  arrays: readonly NpzArray[],
  extra: Readonly<Record<string, Uint8Array>> = {},
): Uint8Array {
  const members: Zippable = {};
  let total = 0;
  const add = (name: string, data: Uint8Array): void => {
    if (name in members) throw new RangeError(`npz member ${name} is given twice`);
    total += data.byteLength;
    if (total >= ZIP_LIMIT)
      throw new InteropError(
        'too_large',
        `the .npz would hold more than 4 GiB (ZIP without ZIP64): export fewer recordings at a time`,
      );
    members[name] = [data, { level: 6, mtime: MTIME }];
  };
  for (const a of arrays) add(`${a.key}.npy`, encodeNpy(a.values, a.shape));
  for (const [name, data] of Object.entries(extra)) add(name, data);
  return zipSync(members);
}

/** One member of a ZIP (an .npz), or undefined when it has none of that name. */
export function readZipMember(zip: Uint8Array, name: string, file: string): Uint8Array | undefined {
  let members: Record<string, Uint8Array>;
  try {
    members = unzipSync(zip, { filter: (f) => f.name === name });
  } catch (error) {
    throw new InteropError(
      'bad_file',
      `${file} is not a ZIP/.npz file: ${(error as Error).message}`,
      undefined,
      {
        cause: error,
      },
    );
  }
  return members[name];
}
