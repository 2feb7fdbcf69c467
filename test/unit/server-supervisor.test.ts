import { Observable, Subject, throwError } from 'rxjs';
import { describe, expect, it } from 'vitest';
import type { StreamInput } from '../../src/core/events.js';
import type { Prediction } from '../../src/core/window.js';
import type { PredictionPipeline } from '../../src/server/pipeline.js';
import { PipelineSupervisor, type SupervisorTimers } from '../../src/server/pipeline-supervisor.js';

/** A clock and timers the test moves by hand. */
function manualTimers() {
  let now = 0;
  const pending: { at: number; fn: () => void }[] = [];
  const timers: SupervisorTimers = {
    now: () => now,
    setTimeout: (fn, ms) => {
      const entry = { at: now + ms, fn };
      pending.push(entry);
      return { cancel: () => pending.splice(pending.indexOf(entry), 1) };
    },
  };
  return {
    timers,
    pending,
    advance: (ms: number) => {
      now += ms;
      for (const due of pending.filter((p) => p.at <= now)) {
        pending.splice(pending.indexOf(due), 1);
        due.fn();
      }
    },
  };
}

describe('PipelineSupervisor', () => {
  it('restarts a failing pipeline with exponential backoff, and from the start again after a stable run', () => {
    const clock = manualTimers();
    let runs = 0;
    let failNow: ((e: Error) => void) | undefined;
    const pipeline: PredictionPipeline = {
      labels: ['x'],
      run: () => {
        runs++;
        return new Observable<Prediction>((s) => {
          failNow = (e) => s.error(e);
        });
      },
    };
    const delays: number[] = [];
    const supervisor = new PipelineSupervisor(
      pipeline,
      new Subject<StreamInput>(),
      { prediction: () => {}, failed: (_e, ms) => delays.push(ms) },
      { initialMs: 100, maxMs: 1000, stableMs: 5000 },
      clock.timers,
    );
    supervisor.start();
    for (let i = 0; i < 6; i++) {
      failNow!(new Error('boom'));
      clock.advance(delays.at(-1)!);
    }
    expect(delays).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(runs).toBe(7);
    // A run that lasted past stableMs counts as healthy: the next failure waits the initial delay again.
    clock.advance(6000);
    failNow!(new Error('boom'));
    expect(delays.at(-1)).toBe(100);
    supervisor.stop();
    clock.advance(1000);
    expect(runs).toBe(7); // stopped: the pending restart was cancelled
    expect(supervisor.restarts).toBe(7);
  });

  it('a pipeline that fails at once on every start does not spin', () => {
    const clock = manualTimers();
    let runs = 0;
    const supervisor = new PipelineSupervisor(
      {
        labels: [],
        run: () => {
          runs++;
          return throwError(() => new Error('broken'));
        },
      },
      new Subject<StreamInput>(),
      { prediction: () => {}, failed: () => {} },
      { initialMs: 100, maxMs: 30_000 },
      clock.timers,
    );
    supervisor.start();
    for (const ms of [100, 200, 400, 800]) clock.advance(ms);
    expect(runs).toBe(5);
    expect(clock.pending).toHaveLength(1);
    supervisor.stop();
  });
});
