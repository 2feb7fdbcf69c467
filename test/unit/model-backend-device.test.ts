import { describe, expect, it } from 'vitest';
import { deviceOf, loadedTensorflowPackage, noteTensorflowPackage } from '../../src/model/backend-device.js';
import { probeBackend } from '../../src/model/backends.js';

// A file of its own: the loaded package is process-wide state, which the other backend tests must not see set.
describe('which device a backend runs on', () => {
  it('counts tensorflow as a GPU only when tfjs-node-gpu is what was loaded', async () => {
    // Neither tfjs-node package is installed here: the probe says so and loads nothing.
    const probe = await probeBackend('tensorflow');
    expect(probe).toMatchObject({
      available: false,
      reason: expect.stringMatching(/neither .* is installed/),
    });
    expect(loadedTensorflowPackage()).toBeUndefined();
    expect(deviceOf('tensorflow')).toBe('cpu');
    noteTensorflowPackage('@tensorflow/tfjs-node');
    expect(deviceOf('tensorflow')).toBe('cpu');
    noteTensorflowPackage('@tensorflow/tfjs-node-gpu');
    expect(deviceOf('tensorflow')).toBe('gpu');
    expect(deviceOf('webgpu')).toBe('gpu');
    for (const backend of ['cpu-fused', 'cpu', 'wasm'] as const) expect(deviceOf(backend)).toBe('cpu');
  });
});
