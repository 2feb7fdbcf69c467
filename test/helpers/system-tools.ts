import { execFileSync } from 'node:child_process';

/**
 * Whether a system program (sox, ffmpeg, chromium...) is on PATH. Locally a missing tool skips its tests with a
 * visible message; with CI=true a missing tool is a failure, because .ci/run installs every one of them.
 */
export function requireTool(name: string): boolean {
  let found = true;
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
  } catch {
    found = false;
  }
  if (found) return true;
  if (process.env['CI'] === 'true')
    throw new Error(`${name} is required on CI but is not installed (see .ci/run)`);
  console.warn(`SKIPPING tests that need "${name}": it is not installed (apt-get install ${name})`);
  return false;
}
