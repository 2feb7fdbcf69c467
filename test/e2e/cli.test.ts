import { execFileSync, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const run = (...args: string[]) =>
  execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], { encoding: 'utf8' });

const fail = (...args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], { encoding: 'utf8' });

describe('braid CLI', () => {
  it('prints its version', () => {
    expect(run('--version').trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
  it('lists its commands in --help', () => {
    expect(run('--help')).toContain('Usage: braid');
  });
  it('refuses values that do not parse as usage errors (exit 2), naming the option', () => {
    const cases: [string[], RegExp][] = [
      [['replay', 'streams/demo.mcap', '--from', '-5s'], /--from <duration>.*not a duration: "-5s"/s],
      [
        ['record', '--duration', 'abc', '--out', 'never.mcap'],
        /--duration <duration>.*not a duration: "abc"/s,
      ],
      [
        ['record', '--duration', '0s', '--out', 'never.mcap'],
        /--duration <duration>.*expected a duration > 0/s,
      ],
      [['record', '--stream-id', 'bad!id', '--out', 'never.mcap'], /--stream-id <id>.*got "bad!id"/s],
      [['replay', 'streams/demo.mcap', '--streams', ','], /option "streams": no stream names in ","/],
      [
        ['replay', 'streams/demo.mcap', '--from', '1.5us'],
        /--from <duration>.*not a whole number of µs: "1.5us"/s,
      ],
      [['replay', 'streams/demo.mcap', '--to', '0s'], /option "to": must be after the recording's start/],
      [
        ['replay', 'streams/demo.mcap', '--from', '2s', '--to', '1500ms'],
        /option "to": must be after --from \(2000000 µs\), got 1500000 µs/,
      ],
      [
        ['replay', 'streams/demo.mcap', '--to', 'ws://127.0.0.1:9/ingest', '--from', '3s', '--until', '3s'],
        /option "until": must be after --from/,
      ],
      [
        ['replay', 'streams/demo.mcap', '--to', '2s', '--until', '3s'],
        /option "until": ends the range beside a --to URL; with --to a duration, that is the range end/,
      ],
      [['replay', 'streams/demo.mcap', '--speed', '0'], /--speed <n>.*expected a number > 0, got "0"/s],
      // Refused before training, not after it when the model is saved.
      [
        ['train', 'streams/demo.mcap', '--out', 'README.md'],
        /option "out": "README.md" is a file, not a model directory/,
      ],
      [
        ['replay', 'streams/demo.mcap', '--model', 'docs'],
        /option "model": docs is not a model directory: it has no model\.json/,
      ],
      [
        ['replay', 'streams/demo.mcap', '--events', 'speech:on=0.7'],
        /option "events": .*only --events-out or an MCAP --out writes/,
      ],
    ];
    for (const [args, message] of cases) {
      const { status, stderr } = fail(...args);
      expect({ args, status }).toEqual({ args, status: 2 });
      expect(stderr).toMatch(message);
    }
  }, 60_000);
});
