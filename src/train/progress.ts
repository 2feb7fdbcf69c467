import cliProgress from 'cli-progress';
import type { EpochRecord } from './fit.js';
import type { ProgressListener, RunInfo } from './train.js';

/** "cv fold 2/5 h=64", "final h=64", "baseline fold 1/5", ... */
export function describeRun(run: RunInfo): string {
  const fold = run.fold === undefined ? '' : ` fold ${run.fold + 1}/${run.folds}`;
  switch (run.phase) {
    case 'cv':
      return `cv${fold} h=${run.hidden}`;
    case 'final':
      return `final h=${run.hidden}`;
    case 'baseline-cv':
      return `baseline${fold}`;
    case 'baseline-final':
      return 'baseline final';
  }
}

const num = (v: number | undefined, digits = 4): string => (v === undefined ? '-' : v.toFixed(digits));

/** One plain line per epoch, for logs and pipes. */
export function epochLine(run: RunInfo, r: EpochRecord): string {
  return `braid train: ${describeRun(run)} epoch ${r.epoch}/${run.maxEpochs} loss ${num(r.trainLoss)} val ${num(r.valLoss)} F1 ${num(r.valMetric, 3)} |g| ${num(r.maxGradNorm, 2)}${r.clipped > 0 ? ` clipped ${r.clipped}/${r.updates}` : ''} (${r.seconds.toFixed(1)} s)`;
}

/**
 * Training progress: on a terminal, a cli-progress bar per run (epoch, loss, validation F1, ETA); otherwise plain
 * lines, one per epoch, so logs stay readable.
 */
export function createProgress(
  stream: NodeJS.WriteStream = process.stderr,
): ProgressListener & { stop(): void } {
  if (!stream.isTTY) {
    return {
      epoch: (run, record) => stream.write(`${epochLine(run, record)}\n`),
      runEnd: (run, result) =>
        stream.write(
          `braid train: ${describeRun(run)} done: ${result.stopReason}, kept epoch ${result.bestEpoch}${result.bestValLoss === undefined ? '' : ` (val loss ${result.bestValLoss.toFixed(4)})`}\n`,
        ),
      stop: () => {},
    };
  }
  let bar: cliProgress.SingleBar | undefined;
  const stop = (): void => {
    bar?.stop();
    bar = undefined;
  };
  return {
    runStart(run) {
      stop();
      bar = new cliProgress.SingleBar(
        {
          stream,
          format:
            '{run} [{bar}] epoch {value}/{total} | loss {loss} | val {val} | F1 {f1} | ETA {eta_formatted}',
          etaBuffer: 5,
          hideCursor: true,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(run.maxEpochs, 0, { run: describeRun(run).padEnd(18), loss: '-', val: '-', f1: '-' });
    },
    epoch(_run, r) {
      bar?.update(r.epoch, { loss: num(r.trainLoss), val: num(r.valLoss), f1: num(r.valMetric, 3) });
    },
    runEnd(run, result) {
      // An early stop leaves the bar short of its total: say why instead of showing a stalled bar.
      bar?.setTotal(result.history.length);
      stop();
      stream.write(`  ${describeRun(run)}: ${result.stopReason}, kept epoch ${result.bestEpoch}\n`);
    },
    stop,
  };
}
