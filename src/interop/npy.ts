import { endianness } from 'node:os';
import { InteropError } from './errors.js';

/** The arrays braid writes, with their NumPy dtype (little-endian). */
export type NpyArray = Float32Array | Float64Array | Int32Array | BigInt64Array;

const DESCR = new Map<string, string>([
  ['Float32Array', '<f4'],
  ['Float64Array', '<f8'],
  ['Int32Array', '<i4'],
  ['BigInt64Array', '<i8'],
]);

const MAGIC = [0x93, ...new TextEncoder().encode('NUMPY')];
/** numpy aligns the data to 64 bytes (ARRAY_ALIGN in numpy/lib/format.py). */
const ALIGN = 64;

/** `(3,)`, `(3, 4)`, `()`: a Python tuple, as numpy writes the shape. */
const pythonTuple = (shape: readonly number[]): string =>
  shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;

/**
 * One array in the .npy format (numpy/lib/format.py, version 1.0, or 2.0 when the header needs more than 64 KiB):
 * magic, version, header length, the header dict padded with spaces to a 64-byte boundary and ended by a newline,
 * then the C-order data. Throws a RangeError when the shape does not hold `values.length` values.
 */
export function encodeNpy(values: NpyArray, shape: readonly number[]): Uint8Array {
  const descr = DESCR.get(values.constructor.name);
  if (descr === undefined) throw new RangeError(`no npy dtype for ${values.constructor.name}`);
  if (shape.some((d) => !Number.isSafeInteger(d) || d < 0))
    throw new RangeError(`shape [${shape.join(', ')}] must hold whole sizes >= 0`);
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== values.length)
    throw new RangeError(`shape [${shape.join(', ')}] holds ${count} values, the array has ${values.length}`);
  // Typed arrays use the platform's byte order; every platform Node runs on here is little-endian.
  if (endianness() !== 'LE')
    throw new InteropError('bad_file', 'writing .npy files needs a little-endian machine');
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${pythonTuple(shape)}, }`;
  let version = 1;
  let prefix = MAGIC.length + 2 + 2;
  if (prefix + dict.length + 1 > 0xffff) {
    version = 2;
    prefix = MAGIC.length + 2 + 4;
  }
  const padded = Math.ceil((prefix + dict.length + 1) / ALIGN) * ALIGN - prefix;
  const header = `${dict}${' '.repeat(padded - dict.length - 1)}\n`;
  const out = new Uint8Array(prefix + header.length + values.byteLength);
  out.set(MAGIC, 0);
  out[MAGIC.length] = version;
  out[MAGIC.length + 1] = 0;
  const view = new DataView(out.buffer);
  if (version === 1) view.setUint16(MAGIC.length + 2, header.length, true);
  else view.setUint32(MAGIC.length + 2, header.length, true);
  out.set(new TextEncoder().encode(header), prefix);
  out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), prefix + header.length);
  return out;
}
