// `npm run bench [name...]`: runs each benchmark in its own process (so one's heap and JIT state do not colour the
// next) and prints their tables, headed by the machine and date, ready to paste into BENCHMARKS.md.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';

const ALL = [
  'align',
  'features',
  'model',
  'interop',
  'record',
  'replay',
  'server',
  'handoff',
  'alloc',
  'profile',
  'cluster',
  'live',
];
const wanted = process.argv.slice(2);
const names = wanted.length > 0 ? wanted : ALL;

const cpu = cpus()[0]?.model ?? 'unknown CPU';
console.log(`# braid benchmarks — ${new Date().toISOString().slice(0, 10)}`);
console.log(
  `${cpu}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}\n`,
);
for (const name of names) {
  const file = `bench/${name}.ts`;
  if (!existsSync(file)) {
    console.log(`## ${name}\n\n(no ${file})\n`);
    continue;
  }
  console.log(`## ${name}\n`);
  try {
    const out = execFileSync(process.execPath, ['--import', 'tsx', file], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    console.log(out);
  } catch (error) {
    console.log(`FAILED: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  }
}
