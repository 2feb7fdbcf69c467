import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { probeAdapter } from '../../src/model/webgpu-adapter.js';

/** The software Vulkan driver Debian's chromium package ships; Dawn accepts it (it rejects Mesa's lavapipe). */
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/** What a child process needs to run the webgpu backend on SwiftShader. */
export const SWIFTSHADER_ENV = { VK_ICD_FILENAMES: SWIFTSHADER_ICD, BRAID_WEBGPU_SOFTWARE: '1' } as const;

/**
 * Points Dawn at SwiftShader for this test process (and its children, through SWIFTSHADER_ENV) and says whether the
 * WebGPU tests can run. As with requireTool: locally a missing piece skips them with a visible message; with CI=true
 * it is a failure, because .ci/run installs chromium and libvulkan1.
 */
export async function useSwiftShader(): Promise<boolean> {
  let problem: string | undefined;
  if (!existsSync(SWIFTSHADER_ICD)) problem = `${SWIFTSHADER_ICD} is missing (apt-get install chromium)`;
  else
    try {
      createRequire(import.meta.url).resolve('webgpu');
    } catch {
      problem = 'the optional "webgpu" package (Dawn) is not installed';
    }
  if (!problem) {
    process.env['VK_ICD_FILENAMES'] = SWIFTSHADER_ICD;
    const probe = await probeAdapter();
    if (!probe.found)
      problem = `Dawn found no adapter on SwiftShader: ${probe.reason} (apt-get install libvulkan1)`;
    else if (probe.adapter.architecture !== 'swiftshader')
      problem = `Dawn picked ${probe.adapter.architecture}, not SwiftShader`;
  }
  if (!problem) return true;
  if (process.env['CI'] === 'true')
    throw new Error(`WebGPU on SwiftShader is required on CI: ${problem} (see .ci/run)`);
  console.warn(`SKIPPING WebGPU tests on SwiftShader: ${problem}`);
  return false;
}
