import { execFileSync } from 'node:child_process';
import { unzipSync } from 'fflate';

/**
 * A small reader of the .npy format (numpy/lib/format.py), written from the format's description and independent of
 * src/interop/npy.ts, so the writer is checked against something that did not come from it.
 */
export interface NpyRead {
  readonly descr: string;
  readonly fortranOrder: boolean;
  readonly shape: number[];
  readonly values: Float32Array | Float64Array | BigInt64Array | Int32Array;
  /** Offset of the data from the start of the member: numpy aligns it to 64 bytes. */
  readonly dataOffset: number;
}

export function readNpy(bytes: Uint8Array): NpyRead {
  const magic = String.fromCharCode(...bytes.subarray(1, 6));
  if (bytes[0] !== 0x93 || magic !== 'NUMPY') throw new Error('not an .npy member (bad magic)');
  const major = bytes[6] as number;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder('latin1').decode(bytes.subarray(start, start + headerLength));
  if (!header.endsWith('\n')) throw new Error('npy header must end with a newline');
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined)
    throw new Error(`npy header lacks descr, fortran_order or shape: ${header}`);
  const shape = shapeText
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean)
    .map(Number);
  const dataOffset = start + headerLength;
  const data = bytes.slice(dataOffset).buffer;
  const kinds: Record<string, (b: ArrayBuffer) => NpyRead['values']> = {
    '<f4': (b) => new Float32Array(b),
    '<f8': (b) => new Float64Array(b),
    '<i8': (b) => new BigInt64Array(b),
    '<i4': (b) => new Int32Array(b),
  };
  const make = kinds[descr];
  if (make === undefined) throw new Error(`dtype ${descr} not handled by the test reader`);
  const values = make(data);
  const count = shape.reduce((a, b) => a * b, 1);
  if (values.length !== count)
    throw new Error(`shape (${shapeText}) holds ${count} values, data has ${values.length}`);
  return { descr, fortranOrder: fortran === 'True', shape, values, dataOffset };
}

/** All members of an .npz: `.npy` ones decoded (key without .npy), others as raw bytes. */
export function readNpz(bytes: Uint8Array): { arrays: Map<string, NpyRead>; raw: Map<string, Uint8Array> } {
  const arrays = new Map<string, NpyRead>();
  const raw = new Map<string, Uint8Array>();
  for (const [name, data] of Object.entries(unzipSync(bytes))) {
    if (name.endsWith('.npy')) arrays.set(name.slice(0, -4), readNpy(data));
    else raw.set(name, data);
  }
  return { arrays, raw };
}

/** Whether python3 with numpy runs here (CI installs python3-numpy, see .ci/run). */
export const hasNumpy = (() => {
  try {
    execFileSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
