import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { lastValueFrom, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DEFAULT_FEATURE_CONFIG, type FeatureConfig, featureLayout } from '../../src/features/config.js';
import { loadModel } from '../../src/model/model-io.js';
import { createModelParams, disposeParams } from '../../src/model/tf-model.js';
import { createModel, randomWeights } from '../../src/model/weights.js';
import { DEFAULT_WINDOWING, PredictionPipelineRunner } from '../../src/pipeline/prediction-pipeline.js';
import { replayRecording } from '../../src/record/replay.js';
import { registerEvalCommand, registerTrainCommand } from '../../src/train/cli.js';
import { assertDatasetMatchesModel, buildDataset } from '../../src/train/dataset.js';
import { type EnsembleReport, registerEnsembleCommand } from '../../src/train/ensemble-cli.js';
import type { EvaluationReport } from '../../src/train/evaluate.js';
import { computeNormalization } from '../../src/train/normalization.js';
import { buildModelConfig, sequenceLogits, sigmoid } from '../../src/train/recurrent.js';
import { useTrainingBackend } from '../../src/train/tf-setup.js';
import type { TrainingReport } from '../../src/train/train.js';
import { S, syntheticSession, writeRecording } from '../helpers/labelled-session.js';

/** The dataset tests reason about windows on the epoch grid, where the synthetic labels change. */
const ALIGNED = { ...DEFAULT_WINDOWING, phase: 'aligned' as const };

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'braid-train-dataset-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const expectDatasetError = async (promise: Promise<unknown>, pattern: RegExp): Promise<void> => {
  await expect(promise).rejects.toMatchObject({
    code: 'BRAID_ERR_DATASET',
    message: expect.stringMatching(pattern),
  });
};

describe('buildDataset', () => {
  it('turns a recording into one sequence per stream with window targets taken at each window end', async () => {
    const a = await writeRecording(join(dir, 'a.mcap'), [
      ...syntheticSession({ streamId: 'cam' }),
      ...syntheticSession({ streamId: 'phone', seconds: 4 }),
    ]);
    const dataset = await buildDataset([a], { windowing: ALIGNED });
    expect(dataset.labels).toEqual(['speech', 'motion']);
    const width = featureLayout(DEFAULT_FEATURE_CONFIG).total;
    expect(dataset.inputWidth).toBe(width);
    expect(dataset.sequences.map((s) => [s.streamId, s.windows.length])).toEqual([
      ['cam', 12],
      ['phone', 8],
    ]);
    const cam = dataset.sequences[0]!;
    // Labels change on every 500 ms boundary; window k ends where window k + 1's label event is, so its target is
    // the value set at its own start: speech on in windows 0, 4, 8; motion on in windows 2, 3, 6, 7, 10, 11.
    const speech = cam.windows.map((_, t) => cam.y[t * 2]);
    const motion = cam.windows.map((_, t) => cam.y[t * 2 + 1]);
    expect(speech).toEqual([1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]);
    expect(motion).toEqual([0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1]);
    // Every window has audio and video; text only where a text event fell.
    const mask = (t: number) => Array.from(cam.x.subarray(t * width + width - 3, (t + 1) * width));
    expect(mask(0)).toEqual([1, 1, 0]);
    expect(mask(1)).toEqual([1, 1, 1]);
    expect(dataset.sessions[0]).toMatchObject({ windows: 20, sequences: 2, unlabelledWindows: 0 });
    expect(dataset.sessions[0]?.positives).toEqual({ speech: 5, motion: 10 });
  });

  it('starts a new sequence after a gap longer than gapReset, as the live runtime resets state', async () => {
    // Label events go on through the gap: windows holding only labels are left out (a live stream sends none).
    const file = await writeRecording(join(dir, 'gap.mcap'), syntheticSession({ seconds: 20, gap: [4, 12] }));
    const dataset = await buildDataset([file], { windowing: ALIGNED });
    expect(dataset.sequences.map((s) => s.windows.length)).toEqual([8, 16]);
    expect(dataset.sessions[0]?.labelOnlyWindows).toBe(16);
    const longer = await buildDataset([file], { gapReset: 10 * S, windowing: ALIGNED });
    expect(longer.sequences.map((s) => s.windows.length)).toEqual([24]);
  });

  it('refuses a recording without a label channel', async () => {
    const file = await writeRecording(join(dir, 'nolabels.mcap'), syntheticSession({ labels: false }));
    await expectDatasetError(buildDataset([file]), /nolabels\.mcap" has no label channel/);
  });

  it('refuses an empty recording', async () => {
    const file = await writeRecording(join(dir, 'empty.mcap'), []);
    await expectDatasetError(buildDataset([file]), /empty\.mcap" is empty: it holds no events/);
  });

  it('resamples audio of other rates (as the live path does), and refuses what it cannot use, saying why', async () => {
    const telephone = await writeRecording(join(dir, '8k.mcap'), syntheticSession({ sampleRate: 8000 }));
    expect((await buildDataset([telephone])).sequences.length).toBeGreaterThan(0);
    const file = await writeRecording(join(dir, '96k.mcap'), syntheticSession({ sampleRate: 96_000 }));
    await expectDatasetError(
      buildDataset([file]),
      /none of its \d+ audio events gave features under the feature config \(unsupported_sample_rate: audio features resample 8000\.\.48000 Hz, got 96000 Hz/,
    );
  });

  it('refuses a stream without labels, a missing label, no recordings and a recording given twice', async () => {
    const mixed = await writeRecording(join(dir, 'mixed.mcap'), [
      ...syntheticSession({ streamId: 'labelled' }),
      ...syntheticSession({ streamId: 'bare', labels: false }),
    ]);
    await expectDatasetError(
      buildDataset([mixed], { windowing: ALIGNED }),
      /stream "bare" has 12 windows but no label events/,
    );
    const ok = await writeRecording(join(dir, 'ok.mcap'), syntheticSession());
    await expectDatasetError(buildDataset([ok], { labels: ['speech', 'typing'] }), /has no label "typing"/);
    await expectDatasetError(buildDataset([]), /no recordings given/);
    await expectDatasetError(buildDataset([ok, join(dir, '.', 'ok.mcap')]), /given twice/);
  });

  it('refuses to pair a dataset with a model trained on another feature config', async () => {
    const file = await writeRecording(join(dir, 'features.mcap'), syntheticSession());
    const other: FeatureConfig = {
      ...DEFAULT_FEATURE_CONFIG,
      audio: { ...DEFAULT_FEATURE_CONFIG.audio, melBands: 20 },
    };
    const dataset = await buildDataset([file], { featureConfig: other });
    const reference = await buildDataset([file]);
    const config = buildModelConfig(
      DEFAULT_FEATURE_CONFIG,
      reference.labels,
      { cell: 'gru', hidden: 4, encoderUnits: { audio: 2, video: 2, text: 2 } },
      computeNormalization(reference.sequences, reference.inputWidth),
    );
    expect(randomWeights(config)).toBeDefined();
    expect(() => assertDatasetMatchesModel(reference, config)).not.toThrow();
    expect(() => assertDatasetMatchesModel(dataset, config)).toThrowError(
      expect.objectContaining({
        code: 'BRAID_ERR_DATASET',
        message: expect.stringMatching(/audio\.melBands: model has 40, dataset has 20/),
      }),
    );
  });
});

describe('live parity', () => {
  it('replaying a recording through the live pipeline feeds the model what the dataset trained it on', async () => {
    const file = await writeRecording(join(dir, 'live.mcap'), syntheticSession({ seconds: 8 }));
    const dataset = await buildDataset([file]);
    const config = buildModelConfig(
      DEFAULT_FEATURE_CONFIG,
      dataset.labels,
      { cell: 'gru', hidden: 8, encoderUnits: { audio: 4, video: 4, text: 4 } },
      computeNormalization(dataset.sequences, dataset.inputWidth),
    );
    const model = createModel(config, randomWeights(config, { seed: 5, biasScale: 0.3 }));
    // A long idle timeout: the comparison must not depend on how busy the test machine is.
    const runner = await PredictionPipelineRunner.create({
      model,
      backend: 'cpu-fused',
      windowing: { idleTimeout: 60 * S },
    });
    const live = await lastValueFrom(runner.run(replayRecording(file, { speed: 'max' })).pipe(toArray()));
    await useTrainingBackend();
    const params = createModelParams(model);
    const offline = sigmoid(sequenceLogits(params, config, dataset.sequences)[0] as Float32Array);
    disposeParams(params);
    const sequence = dataset.sequences[0]!;
    expect(live.map((p) => p.windowIndex)).toEqual(sequence.windows.map((w) => w.index));
    live.forEach((p, t) => {
      dataset.labels.forEach((label, j) => {
        expect(p.scores[label]).toBeCloseTo(offline[t * dataset.labels.length + j] as number, 5);
      });
    });
  });
});

describe('braid train and braid eval', () => {
  const program = (): Command => {
    const cli = new Command('braid').exitOverride();
    registerTrainCommand(cli);
    registerEvalCommand(cli);
    registerEnsembleCommand(cli);
    return cli;
  };

  it('trains from a directory of recordings, writes the model, baseline and report, and evaluates both', async () => {
    const data = join(dir, 'sessions');
    mkdirSync(data);
    for (let i = 0; i < 4; i++)
      await writeRecording(join(data, `s${i}.mcap`), syntheticSession({ streamId: `s${i}`, start: i * 100 }));
    const out = join(dir, 'model');
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      const flags = [
        '--hidden',
        '4,6',
        '--encoder',
        '4',
        '--folds',
        '2',
        '--epochs',
        '3',
        '--baseline-hidden',
        '4',
      ];
      await program().parseAsync(['train', data, '--out', out, ...flags], { from: 'user' });
      expect(stderr.mock.calls.some(([line]) => /cv fold 2\/2 h=6 epoch 3\/3 loss/.test(String(line)))).toBe(
        true,
      );
      const model = await loadModel(out);
      expect(model.config.labels).toEqual(['speech', 'motion']);
      const report = JSON.parse(await readFile(join(out, 'training-report.json'), 'utf8')) as TrainingReport;
      expect(report.selection.sizes.map((s) => s.folds.length)).toEqual([2, 2]);
      // The windowing travels with the model, so serving windows as training did.
      expect(model.config.windowing).toEqual(report.windowing);
      // Four 6 s streams: 13 windows each on their phase-shifted grids (12 each if the grids sat on the epoch).
      expect(report.dataset.windows).toBe(52);
      expect([4, 6]).toContain(model.config.hidden);

      const json = join(dir, 'eval.json');
      await program().parseAsync(['eval', out, join(data, 's0.mcap'), '--json', json], { from: 'user' });
      const table = stdout.mock.calls.map(([chunk]) => String(chunk)).join('');
      expect(table).toMatch(/13 windows from 1 recordings/);
      expect(table).toMatch(/^speech\s+\d\.\d{3}/m);
      const figures = JSON.parse(await readFile(json, 'utf8')) as EvaluationReport;
      expect(Object.keys(figures.model)).toEqual(['speech', 'motion']);
      // Motion is on every other second: 7 of the 13 phase-shifted windows end while it is on (6 of 12 on the epoch grid).
      expect(figures.baseline?.['motion']?.positives).toBe(7);
      // eval windows with the model's own windowing (model.json), says so, and never reads the training report's.
      expect(table).toMatch(/windowing: the model's own: 500 ms windows, hop 500 ms, phase stream/);
      expect(figures.windowingSource).toBe('model');
      // Event-level figures: motion turns on every other second, and the table says how the events found it.
      expect(table).toMatch(/events \(the live state machine over the model's scores/);
      expect(table).toMatch(/^motion\s+\d+\s+\d+\s+\d+\s+\d+\s+\d+/m);
      const motion = figures.events?.labels['motion'];
      expect(motion?.onsets).toBeGreaterThanOrEqual(2);
      expect(motion && motion.matched + motion.missed).toBe(motion?.onsets);
      await expect(
        program().parseAsync(['eval', out, join(data, 's0.mcap'), '--events', 'walking:on=0.5'], {
          from: 'user',
        }),
      ).rejects.toMatchObject({
        code: 'BRAID_ERR_INVALID_OPTION',
        message: expect.stringMatching(/"walking"/),
      });
      const reportPath = join(out, 'training-report.json');
      await writeFile(reportPath, JSON.stringify({ ...report, windowing: { size: 'garbage' } }));
      stdout.mockClear();
      await program().parseAsync(['eval', out, join(data, 's0.mcap')], { from: 'user' });
      expect(stdout.mock.calls.map(([c]) => String(c)).join('')).toMatch(/13 windows from 1 recordings/);
      // A model saved without a windowing is scored with the live default, and the table says so.
      const modelJson = join(out, 'model.json');
      const saved = JSON.parse(await readFile(modelJson, 'utf8'));
      const { windowing: _w, ...topology } = saved.modelTopology;
      await writeFile(modelJson, JSON.stringify({ ...saved, modelTopology: topology }));
      stdout.mockClear();
      await program().parseAsync(['eval', out, join(data, 's0.mcap')], { from: 'user' });
      expect(stdout.mock.calls.map(([c]) => String(c)).join('')).toMatch(
        /windowing: the live default, as served \(the model has no saved windowing\)/,
      );
      // An invalid one is an error naming it, not a silent fallback.
      await writeFile(
        modelJson,
        JSON.stringify({ ...saved, modelTopology: { ...topology, windowing: { size: 5 } } }),
      );
      await expect(
        program().parseAsync(['eval', out, join(data, 's0.mcap')], { from: 'user' }),
      ).rejects.toMatchObject({
        code: 'BRAID_ERR_INVALID_OPTION',
        message: expect.stringMatching(/saved windowing is invalid: hop: /),
      });
      await writeFile(modelJson, JSON.stringify(saved));

      await expect(
        program().parseAsync(['train', data, '--out', out], { from: 'user' }),
      ).rejects.toMatchObject({
        code: 'BRAID_ERR_INVALID_OPTION',
        option: 'out',
      });
      // A baseline that is there but unreadable is an error; none at all (an imported model) is reported as such.
      rmSync(join(out, 'baseline', 'weights.bin'), { force: true });
      await expect(program().parseAsync(['eval', out, data], { from: 'user' })).rejects.toMatchObject({
        code: 'BRAID_ERR_MODEL',
        message: expect.stringMatching(/no readable memoryless baseline in baseline\//),
      });
      rmSync(join(out, 'baseline'), { recursive: true });
      stdout.mockClear();
      await program().parseAsync(['eval', out, data], { from: 'user' });
      expect(stdout.mock.calls.join('')).toContain('no memoryless baseline');
    } finally {
      stderr.mockRestore();
      stdout.mockRestore();
    }
  });

  it('validates on --validation-data recordings and ships that run', async () => {
    const data = join(dir, 'vd-train');
    const val = join(dir, 'vd-val');
    mkdirSync(data);
    mkdirSync(val);
    for (let i = 0; i < 3; i++)
      await writeRecording(join(data, `t${i}.mcap`), syntheticSession({ streamId: `t${i}`, start: i * 100 }));
    await writeRecording(join(val, 'v0.mcap'), syntheticSession({ streamId: 'v0', start: 900 }));
    const out = join(dir, 'vd-model');
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      const flags = ['--hidden', '4', '--encoder', '4', '--epochs', '2', '--baseline-hidden', '4'];
      await program().parseAsync(['train', data, '--validation-data', val, '--out', out, ...flags], {
        from: 'user',
      });
      expect(stderr.mock.calls.some(([line]) => /reading 1 validation recordings/.test(String(line)))).toBe(
        true,
      );
      const report = JSON.parse(await readFile(join(out, 'training-report.json'), 'utf8')) as TrainingReport;
      expect(report.selection.sizes[0]?.folds[0]?.validationSessions).toEqual([join(val, 'v0.mcap')]);
      expect(report.selection.sizes[0]?.folds[0]?.trainSessions).toHaveLength(3);
      expect(report.validationData?.sessions.map((s) => s.path)).toEqual([join(val, 'v0.mcap')]);
      expect(report.final.validated).toBe(true);
      expect(stdout.mock.calls.map(([c]) => String(c)).join('')).toMatch(
        /final: hidden 4, the validated run at epoch \d \(trained on all 3 recordings, validated on 1\)/,
      );
      await expect(
        program().parseAsync(
          ['train', data, '--validation-data', val, '--folds', '2', '--out', join(dir, 'vd-x'), ...flags],
          { from: 'user' },
        ),
      ).rejects.toMatchObject({
        option: 'folds',
        message: expect.stringMatching(/must be 1 with validation data/),
      });
      await expect(
        program().parseAsync(
          ['train', data, '--validation-data', join(data, 't0.mcap'), '--out', join(dir, 'vd-y'), ...flags],
          { from: 'user' },
        ),
      ).rejects.toMatchObject({ message: expect.stringMatching(/t0\.mcap" is also a training recording/) });
    } finally {
      stderr.mockRestore();
      stdout.mockRestore();
    }
  });

  it('merges seeds of one validated training into one model that braid eval scores, and names what cannot merge', async () => {
    const data = join(dir, 'ens-train');
    const val = join(dir, 'ens-val');
    mkdirSync(data);
    mkdirSync(val);
    for (let i = 0; i < 3; i++)
      await writeRecording(join(data, `t${i}.mcap`), syntheticSession({ streamId: `t${i}`, start: i * 100 }));
    await writeRecording(join(val, 'v0.mcap'), syntheticSession({ streamId: 'v0', start: 900 }));
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      const flags = ['--encoder', '4', '--epochs', '2', '--baseline-hidden', '4'];
      const sizes = ['4', '6'];
      const members = sizes.map((_, i) => join(dir, `ens-s${i + 1}`));
      for (const [i, out] of members.entries())
        await program().parseAsync(
          [
            'train',
            data,
            '--validation-data',
            val,
            '--out',
            out,
            '--seed',
            String(i + 1),
            '--hidden',
            sizes[i] as string,
            ...flags,
          ],
          { from: 'user' },
        );
      const out = join(dir, 'ens');
      stdout.mockClear();
      await program().parseAsync(['ensemble', ...members, '--out', out], { from: 'user' });
      expect(stdout.mock.calls.join('')).toMatch(
        /2 models \(hidden 4 \+ 6 = 10\) written to .*ens as one, logits averaged/,
      );
      const merged = await loadModel(out);
      expect(merged.config.hidden).toBe(10);
      expect(merged.config.encoderUnits).toEqual({ audio: 8, video: 8, text: 8 });
      const report = JSON.parse(await readFile(join(out, 'ensemble.json'), 'utf8')) as EnsembleReport;
      expect(report.members.map((m) => m.dir)).toEqual(members);
      expect(report.members[0]?.modelId).toMatch(/^ens-s1@[0-9a-f]{12}$/);
      expect(report.baselineFrom).toBe(members[0]);
      const json = join(dir, 'ens-eval.json');
      stdout.mockClear();
      await program().parseAsync(['eval', out, val, '--json', json], { from: 'user' });
      const figures = JSON.parse(await readFile(json, 'utf8')) as EvaluationReport;
      expect(Object.keys(figures.model)).toEqual(['speech', 'motion']);
      expect(figures.baseline).not.toBeNull();
      await expect(
        program().parseAsync(['ensemble', ...members, '--out', out], { from: 'user' }),
      ).rejects.toMatchObject({ option: 'out', message: expect.stringMatching(/pass --force/) });
      // Replacing a trained model with --force: its baseline and training report go (eval would read that baseline),
      // and the members' thresholds, set for their own scores, are not copied but named.
      await writeFile(join(members[0] as string, 'events.json'), '{"labels":{"speech":{"on":0.3}}}\n');
      const replaced = join(dir, 'ens-replaced');
      await cp(members[1] as string, replaced, { recursive: true });
      rmSync(join(members[0] as string, 'baseline'), { recursive: true });
      rmSync(join(members[1] as string, 'baseline'), { recursive: true });
      stdout.mockClear();
      await program().parseAsync(['ensemble', ...members, '--out', replaced, '--force'], { from: 'user' });
      expect(existsSync(join(replaced, 'training-report.json'))).toBe(false);
      expect(existsSync(join(replaced, 'baseline'))).toBe(false);
      expect(existsSync(join(replaced, 'events.json'))).toBe(false);
      expect(stdout.mock.calls.join('')).toMatch(
        /the members' events\.json thresholds .* are not copied; the default thresholds apply/,
      );
      await expect(
        program().parseAsync(
          ['ensemble', members[0] as string, `${members[0]}/`, '--out', join(dir, 'ens3')],
          { from: 'user' },
        ),
      ).rejects.toMatchObject({ option: 'models', message: expect.stringMatching(/is named twice/) });
      await expect(
        program().parseAsync(['ensemble', ...members, '--out', members[1] as string, '--force'], {
          from: 'user',
        }),
      ).rejects.toMatchObject({ option: 'out', message: expect.stringMatching(/is one of the members/) });
      // --threshold-at: the highest score where speech still finds 0.8 of its validation windows, in events.json,
      // and braid eval --threshold events scores at it.
      const validated = join(dir, 'ens-validated');
      stdout.mockClear();
      await program().parseAsync(
        [
          'ensemble',
          ...members,
          '--out',
          validated,
          '--validation-data',
          val,
          '--threshold-at',
          'speech=0.8',
        ],
        { from: 'user' },
      );
      const events = JSON.parse(await readFile(join(validated, 'events.json'), 'utf8'));
      const chosen = (JSON.parse(await readFile(join(validated, 'ensemble.json'), 'utf8')) as EnsembleReport)
        .validatedThreshold;
      expect(chosen).toMatchObject({ label: 'speech', target: 0.8, validationSessions: 1 });
      expect(events).toEqual({ labels: { speech: { on: chosen?.on, off: chosen?.on } } });
      expect(stdout.mock.calls.join('')).toMatch(
        /speech on at scores >= \d\.\d{4}, where it finds [01]\.\d{3} of its \d+ windows in 1 validation recordings/,
      );
      const atEvents = join(dir, 'ens-events.json');
      await program().parseAsync(['eval', validated, val, '--threshold', 'events', '--json', atEvents], {
        from: 'user',
      });
      const scored = JSON.parse(await readFile(atEvents, 'utf8')) as EvaluationReport;
      expect(scored.model['speech']?.recall).toBe(chosen?.recall);
      expect(chosen?.recall).toBeGreaterThanOrEqual(0.8);
      const bad = (flags: string[]) =>
        program().parseAsync(['ensemble', ...members, '--out', join(dir, 'ens-bad'), ...flags], {
          from: 'user',
        });
      await expect(bad(['--threshold-at', 'speech=0.8'])).rejects.toMatchObject({
        option: 'validation-data',
      });
      await expect(bad(['--validation-data', val])).rejects.toMatchObject({ option: 'threshold-at' });
      await expect(bad(['--validation-data', val, '--threshold-at', 'speech'])).rejects.toMatchObject({
        option: 'threshold-at',
        message: expect.stringMatching(/LABEL=RECALL/),
      });
      await expect(bad(['--validation-data', val, '--threshold-at', 'walking=0.9'])).rejects.toMatchObject({
        option: 'threshold-at',
        message: expect.stringMatching(/"walking" is not a label of the models \(speech, motion\)/),
      });
      await expect(
        program().parseAsync(['ensemble', members[0] as string, '--out', join(dir, 'ens1')], {
          from: 'user',
        }),
      ).rejects.toMatchObject({
        option: 'models',
        message: expect.stringMatching(/at least 2 model directories, got 1/),
      });
      // A model of other labels scores something else: there is no mean of the two, and the error says where they part.
      const other = join(dir, 'ens-speech');
      await program().parseAsync(
        ['train', data, '--out', other, '--labels', 'speech', '--hidden', '4', ...flags],
        {
          from: 'user',
        },
      );
      await expect(
        program().parseAsync(['ensemble', members[0] as string, other, '--out', join(dir, 'ens2')], {
          from: 'user',
        }),
      ).rejects.toMatchObject({
        code: 'BRAID_ERR_MODEL',
        message: expect.stringMatching(/member 2 differs from member 1 in labels \(1 entry vs 2 entries\)/),
      });
    } finally {
      stderr.mockRestore();
      stdout.mockRestore();
    }
  });

  it('names the flag that is wrong', async () => {
    const file = join(dir, 'flags.mcap');
    await writeRecording(file, syntheticSession());
    const run = (flags: string[]) =>
      program().parseAsync(['train', file, '--out', join(dir, 'x'), ...flags], { from: 'user' });
    await expect(run(['--cell', 'rnn'])).rejects.toMatchObject({ option: 'cell' });
    await expect(run(['--hidden', '32,abc'])).rejects.toMatchObject({ option: 'hidden' });
    await expect(run(['--clipnorm', '-1'])).rejects.toMatchObject({ option: 'clipnorm' });
    await expect(run(['--encoder', '1,2'])).rejects.toMatchObject({ option: 'encoder' });
    await expect(run(['--window-weight', 'distractor'])).rejects.toMatchObject({
      option: 'window-weight',
      message: expect.stringMatching(/LABEL=WEIGHT.*"distractor"/),
    });
    // A recorded label the recordings do not carry would weigh nothing: an error naming it.
    await expect(run(['--window-weight', 'distractor=3'])).rejects.toMatchObject({
      code: 'BRAID_ERR_DATASET',
      message: expect.stringMatching(/no recording carries the window weight label "distractor"/),
    });
    await expect(run(['--window-weight', 'speech=3'])).rejects.toMatchObject({
      code: 'BRAID_ERR_DATASET',
      message: expect.stringMatching(/not learnt ones, got speech beside speech, motion/),
    });
    await expect(run(['--select-by', 'recall-at-fpr:speech'])).rejects.toMatchObject({
      option: 'select-by',
      message: expect.stringMatching(/"loss" or "recall-at-fpr:LABEL:CONDITION"/),
    });
    await expect(run(['--select-by', 'recall-at-fpr:speech:distractor'])).rejects.toMatchObject({
      code: 'BRAID_ERR_DATASET',
      message: expect.stringMatching(/--select-by: no recording carries the recorded label "distractor"/),
    });
    await expect(run(['--select-by', 'recall-at-fpr:typing:distractor'])).rejects.toMatchObject({
      option: 'select-by',
      message: expect.stringMatching(/label "typing" is not learnt/),
    });
    await expect(run(['--features', join(dir, 'missing.json')])).rejects.toMatchObject({
      option: 'features',
      message: expect.stringMatching(/cannot read .*missing\.json/),
    });
    const bad = join(dir, 'bad-features.json');
    await writeFile(bad, JSON.stringify({ ...DEFAULT_FEATURE_CONFIG, video: { thumbnail: 'big' } }));
    await expect(run(['--features', bad])).rejects.toMatchObject({
      option: expect.stringMatching(/^features\.video/),
    });
  });

  it('trains on the features of --features CONFIG and saves them with the model', async () => {
    const data = join(dir, 'features');
    mkdirSync(data, { recursive: true });
    for (const name of ['a', 'b'])
      await writeRecording(join(data, `${name}.mcap`), syntheticSession({ seconds: 4, streamId: name }));
    // The layout models had before the descriptors: a 16×12 mean thumbnail, no descriptors.
    const legacy: FeatureConfig = {
      ...DEFAULT_FEATURE_CONFIG,
      audio: { ...DEFAULT_FEATURE_CONFIG.audio, descriptors: ['envelope'] },
      video: { thumbWidth: 16, thumbHeight: 12, thumbnail: 'mean' },
    };
    const config = join(dir, 'legacy-features.json');
    await writeFile(config, JSON.stringify(legacy));
    const out = join(dir, 'with-features');
    const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const flags = [
        '--features',
        config,
        '--hidden',
        '4',
        '--encoder',
        '4',
        '--epochs',
        '1',
        '--baseline-hidden',
        '4',
      ];
      await program().parseAsync(['train', data, '--out', out, ...flags], { from: 'user' });
    } finally {
      stdout.mockRestore();
      stderr.mockRestore();
    }
    const model = await loadModel(out);
    expect(model.config.featureConfig).toEqual(legacy);
    expect(model.config.normalization.mean).toHaveLength(featureLayout(legacy).total);
    expect(featureLayout(legacy).total).toBe(350 + 3); // the envelope's three values after the old 350
  });
});
