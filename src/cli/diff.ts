import type { Command } from 'commander';
import { InvalidOptionError } from '../core/errors.js';
import { diffPredictions, type WindowDifference } from '../record/prediction-diff.js';
import { type RecordedPrediction, readPredictions } from '../record/recording-reader.js';

async function collect(path: string, log: (line: string) => void): Promise<RecordedPrediction[]> {
  const out: RecordedPrediction[] = [];
  for await (const p of readPredictions(path, {
    onWarning: (w) => log(`braid: warning: ${path}: ${w.message}`),
  }))
    out.push(p);
  return out;
}

const seconds = (us: number) => `${(us / 1e6).toFixed(3)} s`;

function describe(d: WindowDifference): string {
  const where = `${d.streamId} window ${d.windowIndex} (ends ${seconds(d.windowEnd)})`;
  if (d.kind === 'only_a') return `${where}: only in A`;
  if (d.kind === 'only_b') return `${where}: only in B`;
  const parts = Object.entries(d.scores ?? {}).map(
    ([label, { a, b }]) => `${label} ${a === null ? '-' : a.toFixed(6)} → ${b === null ? '-' : b.toFixed(6)}`,
  );
  if (d.present) parts.push('presence differs');
  if (d.times) parts.push('window times differ');
  return `${where}: ${parts.join(', ')}`;
}

/** `braid diff A.mcap B.mcap`: where two runs' recorded predictions differ; exit code 1 when they do. */
export function registerDiffCommand(program: Command): void {
  program
    .command('diff')
    .description(
      'compare the predictions recorded in two MCAP files (serve --record, replay --out x.mcap), window by window; exit code 1 when they differ',
    )
    .argument('<a>', 'first recording (.mcap)')
    .argument('<b>', 'second recording (.mcap)')
    .option('--tolerance <t>', 'largest score difference still counted as equal', '0')
    .option('--limit <n>', 'differing windows to list', '20')
    .option('--json', 'print the whole comparison as JSON')
    .action(async (a: string, b: string, options: { tolerance: string; limit: string; json?: boolean }) => {
      const log = (line: string) => console.error(line);
      const tolerance = Number(options.tolerance);
      if (!(tolerance >= 0))
        throw new InvalidOptionError('tolerance', `must be a number >= 0, got "${options.tolerance}"`);
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 0)
        throw new InvalidOptionError('limit', `must be a whole number >= 0, got "${options.limit}"`);
      const [left, right] = [await collect(a, log), await collect(b, log)];
      if (left.length === 0 && right.length === 0)
        throw new InvalidOptionError('a', `neither ${a} nor ${b} holds predictions`);
      const diff = diffPredictions(left, right, tolerance);
      if (options.json) console.log(JSON.stringify(diff, null, 2));
      else {
        console.log(`A: ${a} (${left.length} predictions, model ${diff.models.a.join(', ') || 'none'})`);
        console.log(`B: ${b} (${right.length} predictions, model ${diff.models.b.join(', ') || 'none'})`);
        console.log(
          `${diff.identical ? 'identical' : 'differ'}: ${diff.same} windows the same, ${diff.differs} differ, ${diff.onlyA} only in A, ${diff.onlyB} only in B${tolerance > 0 ? ` (tolerance ${tolerance})` : ''}`,
        );
        for (const s of diff.streams) {
          const max = Object.entries(s.maxScoreDelta)
            .map(([label, d]) => `${label} ${Number.isFinite(d) ? d.toExponential(2) : 'missing'}`)
            .join(', ');
          console.log(
            `  ${s.streamId}: ${s.same} same, ${s.differs} differ, ${s.onlyA} only in A, ${s.onlyB} only in B; max |Δscore| ${max || '-'}${s.first ? `; first: window ${s.first.windowIndex} (ends ${seconds(s.first.windowEnd)})` : ''}`,
          );
        }
        for (const d of diff.differences.slice(0, limit)) console.log(`  ${describe(d)}`);
        if (diff.differences.length > limit) console.log(`  ... ${diff.differences.length - limit} more`);
      }
      if (!diff.identical) process.exitCode = 1;
    });
}
