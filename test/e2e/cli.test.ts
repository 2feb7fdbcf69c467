import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const run = (...args: string[]) =>
  execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], { encoding: 'utf8' });

describe('braid CLI', () => {
  it('prints its version', () => {
    expect(run('--version').trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
  it('lists its commands in --help', () => {
    expect(run('--help')).toContain('Usage: braid');
  });
});
