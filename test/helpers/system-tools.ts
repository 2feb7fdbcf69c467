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

/**
 * A Python 3 interpreter that can import `module` (PATH's python3, else Debian's /usr/bin/python3, which .ci/run
 * gives python3-websockets and python3-numpy), or undefined — skipped locally with a message, a failure under CI.
 */
export function pythonWith(module: string): string | undefined {
  for (const python of ['python3', '/usr/bin/python3'])
    try {
      execFileSync(python, ['-c', `import ${module}`], { stdio: 'ignore' });
      return python;
    } catch {
      // try the next
    }
  if (process.env['CI'] === 'true')
    throw new Error(`no python3 with "${module}" on CI (see .ci/run: apt-get install python3-${module})`);
  console.warn(`SKIPPING tests that need Python's "${module}": apt-get install python3-${module}`);
  return undefined;
}
