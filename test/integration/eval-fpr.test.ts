import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { modelWindowing } from '../../src/align/windowing.js';
import type { AnySourceEvent } from '../../src/core/events.js';
import { parseFeatureConfig } from '../../src/features/config.js';
import { loadModel } from '../../src/model/model-io.js';
import { createModelParams, disposeParams } from '../../src/model/tf-model.js';
import { baselineLogits, loadBaseline, TrainableBaseline } from '../../src/train/baseline.js';
import { registerEvalCommand, registerTrainCommand } from '../../src/train/cli.js';
import { buildDataset, type Sequence } from '../../src/train/dataset.js';
import type { EvaluationReport } from '../../src/train/evaluate.js';
import type { OperatingPoints } from '../../src/train/operating-points.js';
import { sequenceLogits, sigmoid } from '../../src/train/recurrent.js';
import { useTrainingBackend } from '../../src/train/tf-setup.js';
import type { TrainingReport } from '../../src/train/train.js';
import { S, syntheticSession, T0, writeRecording } from '../helpers/labelled-session.js';

/** The synthetic sessions' distractor: a loud 1.2 kHz tone during [0.6, 1.4) s of every 2 s: speech is
 * off then, motion off and then on. */
const distractorOn = (t: number, start: number): boolean => {
  const phase = (t - start) % (2 * S);
  return phase >= 0.6 * S && phase < 1.4 * S;
};

/** syntheticSession with the distractor tone mixed in and a `distractor` label beside speech and motion. */
function withDistractor(streamId: string, startSeconds: number): AnySourceEvent[] {
  const start = T0 + startSeconds * S;
  const events = syntheticSession({ streamId, start: startSeconds }).map((e): AnySourceEvent => {
    if (e.modality !== 'audio') return e;
    const { sampleRate, samples } = e.payload;
    const mixed = Int16Array.from(samples, (v, k) => {
      const t = e.time + Math.floor((k * S) / sampleRate);
      return distractorOn(t, start)
        ? Math.round(v + 9000 * Math.sign(Math.sin((2 * Math.PI * 1200 * t) / S)))
        : v;
    });
    return { ...e, payload: { ...e.payload, samples: mixed } };
  });
  const distractor = (time: number, seq: number, value: number): AnySourceEvent => ({
    streamId,
    modality: 'label',
    time,
    seq,
    payload: { labels: { distractor: value } },
  });
  const seconds = 6;
  for (let k = 0; k < seconds; k += 2) {
    events.push(distractor(start + k * S + 0.6 * S, 1000 + k, 1));
    events.push(distractor(start + k * S + 1.4 * S, 1001 + k, 0));
  }
  // The label starts off at the session's start, so every window has a value for it.
  events.push(distractor(start, 999, 0));
  return events.sort((a, b) => a.time - b.time);
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'braid-eval-fpr-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const program = (): Command => {
  const cli = new Command('braid').exitOverride();
  registerTrainCommand(cli);
  registerEvalCommand(cli);
  return cli;
};

/** False positives of `label` counted from scratch: windows with the distractor on at end − 1 µs and the target off. */
function countByHand(
  sequences: readonly Sequence[],
  scores: readonly Float32Array[],
  labels: readonly string[],
  label: string,
  threshold: number,
  starts: ReadonlyMap<string, number>,
): { on: [number, number]; off: [number, number]; positives: [number, number] } {
  const l = labels.indexOf(label);
  const on: [number, number] = [0, 0];
  const off: [number, number] = [0, 0];
  const positives: [number, number] = [0, 0];
  sequences.forEach((s, i) => {
    s.windows.forEach((w, t) => {
      const distractor = distractorOn(w.end - 1, starts.get(s.streamId) as number);
      const fired = ((scores[i] as Float32Array)[t * labels.length + l] as number) >= threshold;
      if ((s.y[t * labels.length + l] as number) > 0.5) {
        if (distractor) {
          positives[1]++;
          if (fired) positives[0]++;
        }
        return;
      }
      const bucket = distractor ? on : off;
      bucket[1]++;
      if (fired) bucket[0]++;
    });
  });
  return { on, off, positives };
}

describe('braid eval --fpr-on', () => {
  it("scores each label's false positives on the windows where the recorded distractor label is on", async () => {
    const data = join(dir, 'sessions');
    mkdirSync(data);
    const starts = new Map<string, number>();
    for (let i = 0; i < 3; i++) {
      starts.set(`s${i}`, T0 + i * 100 * S);
      await writeRecording(join(data, `s${i}.mcap`), withDistractor(`s${i}`, i * 100));
    }
    const out = join(dir, 'model');
    const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const flags = ['--labels', 'speech,motion', '--hidden', '4', '--encoder', '4', '--epochs', '2'];
      await program().parseAsync(['train', data, '--out', out, ...flags, '--baseline-hidden', '4'], {
        from: 'user',
      });
      // The scores, computed here from the model and baseline on the dataset eval builds.
      await useTrainingBackend();
      const model = await loadModel(out);
      const dataset = await buildDataset(
        [join(data, 's0.mcap'), join(data, 's1.mcap'), join(data, 's2.mcap')],
        {
          featureConfig: parseFeatureConfig(model.config.featureConfig, 'model'),
          windowing: modelWindowing(model.config.windowing).windowing,
          labels: model.config.labels,
        },
      );
      const params = createModelParams(model);
      const modelScores = sequenceLogits(params, model.config, dataset.sequences).map(sigmoid);
      disposeParams(params);
      const baseline = new TrainableBaseline(await loadBaseline(out));
      const baselineScores = baselineLogits(baseline, dataset.sequences).map(sigmoid);
      baseline.dispose();
      // A threshold at the median speech score on distractor windows, so some fire and some do not.
      const onScores = dataset.sequences
        .flatMap((s, i) =>
          s.windows.map((w, t) =>
            distractorOn(w.end - 1, starts.get(s.streamId) as number) && (s.y[t * 2] as number) < 0.5
              ? ((modelScores[i] as Float32Array)[t * 2] as number)
              : Number.NaN,
          ),
        )
        .filter((v) => !Number.isNaN(v))
        .sort((a, b) => a - b);
      const threshold = onScores[Math.floor(onScores.length / 2)] as number;

      const json = join(dir, 'eval.json');
      await program().parseAsync(['eval', out, data, '--threshold', String(threshold), '--json', json], {
        from: 'user',
      });
      const table = stdout.mock.calls.map(([chunk]) => String(chunk)).join('');
      const report = JSON.parse(await readFile(json, 'utf8')) as EvaluationReport;
      const fpr = report.fprOn?.['distractor'];
      expect(fpr).toBeDefined();
      // Three 6 s sessions, 0.8 s of distractor every 2 s: each such span holds the end of one or two windows.
      const windowsOn = dataset.sequences.reduce(
        (n, s) =>
          n + s.windows.filter((w) => distractorOn(w.end - 1, starts.get(s.streamId) as number)).length,
        0,
      );
      expect(windowsOn).toBeGreaterThanOrEqual(9);
      expect(fpr?.windows).toBe(windowsOn);
      for (const label of ['speech', 'motion']) {
        for (const [scores, side] of [
          [modelScores, fpr?.model],
          [baselineScores, fpr?.baseline],
        ] as const) {
          const hand = countByHand(dataset.sequences, scores, model.config.labels, label, threshold, starts);
          const got = side?.[label];
          expect([got?.falsePositives, got?.negatives]).toEqual(hand.on);
          expect([got?.otherFalsePositives, got?.otherNegatives]).toEqual(hand.off);
          expect([got?.truePositives, got?.positives]).toEqual(hand.positives);
          expect(hand.on[1]).toBeGreaterThan(0);
          expect(got?.rate).toBeCloseTo(hand.on[0] / hand.on[1], 12);
        }
      }
      // Some of the speech-off distractor windows fire and some do not at the median: the figure is not trivially 0 or 1.
      const speech = fpr?.model['speech'];
      expect(speech?.falsePositives).toBeGreaterThan(0);
      expect(speech?.falsePositives).toBeLessThan(speech?.negatives as number);
      // Its interval by a bootstrap over the three recordings holds it, and is printed beside it.
      const interval = fpr?.modelIntervals['speech']?.rate;
      expect(interval?.[0]).toBeLessThanOrEqual(speech?.rate as number);
      expect(interval?.[1]).toBeGreaterThanOrEqual(speech?.rate as number);
      expect(table).toMatch(/speech\s+\d+\/\d+ [\d.]+% \([\d.]+%–[\d.]+%\)/);
      // Beside the baseline in the table, with the counts under it.
      expect(table).toMatch(/FPR@distractor.*baseline P.*FPR@distractor/);
      expect(table).toMatch(new RegExp(`^speech .* ${(100 * (speech?.rate as number)).toFixed(1)}%`, 'm'));
      expect(table).toContain(`false positives and recall where "distractor" is on (${windowsOn} windows`);
      // Motion turns on during the distractor ([1, 1.4) s of each 2 s): those windows give motion's recall there.
      expect(fpr?.model['motion']?.positives).toBeGreaterThan(0);
      expect(fpr?.model['speech']?.positives).toBe(0);
      expect(table).toContain(`${speech?.falsePositives}/${speech?.negatives}`);

      // Operating points (--at-fpr 0.05, --at-recall 0.95 by default), checked against the scores by hand: above the
      // threshold at most 5 % of the speech-off distractor windows fire, and no lower threshold keeps to that.
      const negatives: number[] = [];
      const positives: number[] = [];
      dataset.sequences.forEach((s, i) => {
        s.windows.forEach((w, t) => {
          const score = (modelScores[i] as Float32Array)[t * 2] as number;
          if ((s.y[t * 2] as number) > 0.5) positives.push(score);
          else if (distractorOn(w.end - 1, starts.get(s.streamId) as number)) negatives.push(score);
        });
      });
      const op = fpr?.operating;
      expect(op?.targets).toEqual({ fpr: 0.05, recall: 0.95 });
      const atFpr = op?.model['speech'] as OperatingPoints;
      const t = atFpr.thresholdAtFpr as number;
      expect(negatives.filter((v) => v > t).length).toBeLessThanOrEqual(Math.floor(0.05 * negatives.length));
      expect(negatives.filter((v) => v >= t).length).toBeGreaterThan(Math.floor(0.05 * negatives.length));
      expect(atFpr.recallAtFpr).toBe(positives.filter((v) => v > t).length / positives.length);
      const r = atFpr.thresholdAtRecall as number;
      expect(positives.filter((v) => v >= r).length).toBeGreaterThanOrEqual(0.95 * positives.length);
      expect(atFpr.rateAtRecall).toBe(negatives.filter((v) => v >= r).length / negatives.length);
      expect(op?.modelIntervals['speech']?.recallAtFpr?.[0]).toBeLessThanOrEqual(atFpr.recallAtFpr as number);
      expect(op?.baseline?.['speech']?.recallAtFpr).not.toBeNull();
      expect(table).toContain('operating points on "distractor"');
      expect(table).toMatch(
        new RegExp(`^speech\\s+${atFpr.recallAtFpr?.toFixed(3)} \\([\\d.]+–[\\d.]+\\) above`, 'm'),
      );
      // Other targets; shares outside 0..1 are refused.
      await program().parseAsync(
        ['eval', out, data, '--at-fpr', '0.5', '--at-recall', '0.5', '--json', json],
        {
          from: 'user',
        },
      );
      const other = (JSON.parse(await readFile(json, 'utf8')) as EvaluationReport).fprOn?.['distractor']
        ?.operating;
      expect(other?.targets).toEqual({ fpr: 0.5, recall: 0.5 });
      expect(other?.model['speech']?.recallAtFpr).toBeGreaterThanOrEqual(atFpr.recallAtFpr as number);
      await expect(
        program().parseAsync(['eval', out, data, '--at-fpr', '5'], { from: 'user' }),
      ).rejects.toMatchObject({ code: 'BRAID_ERR_INVALID_OPTION', option: 'at-fpr' });

      // none turns it off; a label no recording carries, or one the model predicts, is refused.
      await program().parseAsync(['eval', out, data, '--fpr-on', 'none', '--json', json], { from: 'user' });
      expect((JSON.parse(await readFile(json, 'utf8')) as EvaluationReport).fprOn).toBeUndefined();
      await expect(
        program().parseAsync(['eval', out, data, '--fpr-on', 'music'], { from: 'user' }),
      ).rejects.toMatchObject({ code: 'BRAID_ERR_DATASET', message: expect.stringMatching(/"music"/) });
      await expect(
        program().parseAsync(['eval', out, data, '--fpr-on', 'speech'], { from: 'user' }),
      ).rejects.toMatchObject({ code: 'BRAID_ERR_INVALID_OPTION', option: 'fpr-on' });
      // Recordings without the label: no section by default, and no error.
      const plain = join(dir, 'plain.mcap');
      await writeRecording(plain, syntheticSession({ streamId: 'p', start: 1000 }));
      stdout.mockClear();
      await program().parseAsync(['eval', out, plain, '--json', json], { from: 'user' });
      expect((JSON.parse(await readFile(json, 'utf8')) as EvaluationReport).fprOn).toBeUndefined();
      expect(stdout.mock.calls.join('')).not.toContain('FPR@');
    } finally {
      stdout.mockRestore();
      stderr.mockRestore();
    }
  }, 120_000);

  it('ships the threshold validated at 5 % false positives as events.json, and eval scores at it with --threshold events', async () => {
    const data = join(dir, 'vt-train');
    const val = join(dir, 'vt-val');
    mkdirSync(data);
    mkdirSync(val);
    for (let i = 0; i < 3; i++)
      await writeRecording(join(data, `t${i}.mcap`), withDistractor(`t${i}`, i * 100));
    for (let i = 0; i < 2; i++)
      await writeRecording(join(val, `v${i}.mcap`), withDistractor(`v${i}`, 900 + i * 100));
    const out = join(dir, 'vt-model');
    const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const flags = ['--labels', 'speech,motion', '--hidden', '4', '--encoder', '4', '--epochs', '3'];
      await program().parseAsync(
        [
          'train',
          data,
          '--validation-data',
          val,
          '--select-by',
          'recall-at-fpr:speech:distractor',
          '--out',
          out,
          ...flags,
          '--baseline-hidden',
          '4',
        ],
        { from: 'user' },
      );
      const report = JSON.parse(await readFile(join(out, 'training-report.json'), 'utf8')) as TrainingReport;
      const validated = report.validatedThreshold;
      expect(validated?.label).toBe('speech');
      const events = JSON.parse(await readFile(join(out, 'events.json'), 'utf8'));
      expect(events).toEqual({ labels: { speech: { on: validated?.on, off: validated?.on } } });
      expect(stdout.mock.calls.join('')).toMatch(
        /events\.json: speech on at scores >= [\d.]+, where validation recall was [\d.]+ at 5 % false positives on distractor/,
      );

      const json = join(dir, 'vt-eval.json');
      stdout.mockClear();
      await program().parseAsync(['eval', out, val, '--threshold', 'events', '--json', json], {
        from: 'user',
      });
      const scored = JSON.parse(await readFile(json, 'utf8')) as EvaluationReport;
      // speech at its validated threshold, motion at the default events' on (0.6), as serve would fire them.
      expect(scored.threshold).toEqual({ speech: validated?.on, motion: 0.6 });
      expect(scored.model['speech']?.threshold).toBe(validated?.on);
      const rate = scored.fprOn?.['distractor']?.model['speech'];
      expect(rate?.negatives).toBeGreaterThan(0);
      expect(rate?.rate).toBeLessThanOrEqual(0.05);
      expect(scored.model['speech']?.recall).toBeCloseTo(validated?.recall as number, 6);
      expect(stdout.mock.calls.join('')).toContain("threshold per label (their events' on): speech ");
      // --events overrides it, as it does live; a threshold that is neither a share nor "events" is refused.
      await program().parseAsync(
        ['eval', out, val, '--threshold', 'events', '--events', 'speech:on=0.9,off=0.5', '--json', json],
        { from: 'user' },
      );
      expect((JSON.parse(await readFile(json, 'utf8')) as EvaluationReport).threshold).toEqual({
        speech: 0.9,
        motion: 0.6,
      });
      await expect(
        program().parseAsync(['eval', out, val, '--threshold', 'model'], { from: 'user' }),
      ).rejects.toMatchObject({
        option: 'threshold',
        message: expect.stringMatching(/or "events", got "model"/),
      });

      // Trained again by loss into the same directory: no threshold validated, the old events.json kept and named.
      stdout.mockClear();
      await program().parseAsync(
        ['train', data, '--validation-data', val, '--out', out, '--force', ...flags],
        {
          from: 'user',
        },
      );
      expect(stdout.mock.calls.join('')).toMatch(/kept .*events\.json from before/);
    } finally {
      stdout.mockRestore();
      stderr.mockRestore();
    }
  }, 120_000);
});
