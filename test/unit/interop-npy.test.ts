import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeNpy } from '../../src/interop/npy.js';
import { encodeNpz, readZipMember } from '../../src/interop/npz.js';
import { hasNumpy, readNpy, readNpz } from '../helpers/npy-reader.js';

describe('.npy writer', () => {
  it.each([
    ['float32 2-D', new Float32Array([1.5, -2, 3, 4, 5, Number.NaN]), [2, 3], '<f4', '(2, 3)'],
    ['int64 1-D', new BigInt64Array([1_772_000_000_329_814n, -1n]), [2], '<i8', '(2,)'],
    ['float64 0-D', new Float64Array([Math.PI]), [], '<f8', '()'],
    ['empty', new Float32Array(0), [0, 350], '<f4', '(0, 350)'],
  ] as const)('%s: header as numpy writes it, data 64-byte aligned', (_, values, shape, descr, tuple) => {
    const bytes = encodeNpy(values, shape);
    expect([...bytes.subarray(0, 8)]).toEqual([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
    const length = bytes[8]! | (bytes[9]! << 8);
    expect((10 + length) % 64).toBe(0);
    const header = new TextDecoder().decode(bytes.subarray(10, 10 + length));
    expect(header).toMatch(
      new RegExp(
        `^\\{'descr': '${descr}', 'fortran_order': False, 'shape': \\${tuple.slice(0, -1)}\\), \\} *\\n$`,
      ),
    );
    const read = readNpy(bytes);
    expect(read.shape).toEqual([...shape]);
    expect(Array.from(read.values as ArrayLike<number | bigint>)).toEqual(
      Array.from(values as ArrayLike<number | bigint>),
    );
  });

  it('refuses a shape that does not hold the values', () => {
    expect(() => encodeNpy(new Float32Array(5), [2, 3])).toThrow(/holds 6 values, the array has 5/);
  });
});

describe('.npz writer', () => {
  const arrays = [
    { key: 'x_a', values: new Float32Array([0.25, -1, 7, 8]), shape: [2, 2] },
    { key: 't_a', values: new BigInt64Array([10n, 20n]), shape: [2] },
  ];
  const extra = { 'meta.json': new TextEncoder().encode('{"labels": ["speech"]}') };

  it('is a ZIP of <key>.npy members and raw extras, the same bytes every time', () => {
    const npz = encodeNpz(arrays, extra);
    const read = readNpz(npz);
    expect([...read.arrays.keys()]).toEqual(['x_a', 't_a']);
    expect(new TextDecoder().decode(read.raw.get('meta.json'))).toBe('{"labels": ["speech"]}');
    expect(Buffer.from(encodeNpz(arrays, extra)).equals(Buffer.from(npz))).toBe(true);
    expect(readZipMember(npz, 'meta.json', 'a.npz')).toEqual(extra['meta.json']);
    expect(readZipMember(npz, 'nothing', 'a.npz')).toBeUndefined();
    expect(() => readZipMember(new Uint8Array([1, 2, 3]), 'meta.json', 'bad.npz')).toThrow(
      /bad\.npz is not a ZIP/,
    );
  });

  it.skipIf(!hasNumpy && !process.env['CI'])(
    'numpy.load reads it: dtypes, shapes, values, the raw member as bytes',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'braid-npz-'));
      try {
        const file = join(dir, 'a.npz');
        writeFileSync(file, encodeNpz(arrays, extra));
        const script = `
import json, sys, numpy as np
d = np.load(sys.argv[1])
print(json.dumps({k: (json.loads(d[k]) if k == "meta.json" else [str(d[k].dtype), list(d[k].shape), d[k].ravel().tolist()]) for k in d.files}))
`;
        expect(JSON.parse(execFileSync('python3', ['-c', script, file], { encoding: 'utf8' }))).toEqual({
          x_a: ['float32', [2, 2], [0.25, -1, 7, 8]],
          t_a: ['int64', [2], [10, 20]],
          'meta.json': { labels: ['speech'] },
        });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
