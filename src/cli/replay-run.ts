import { catchError, concat, defer, EMPTY, Observable, tap, throwError } from 'rxjs';
import { type AnySourceEvent, isStreamControl, type StreamInput } from '../core/events.js';
import { FlowCredit } from '../core/flow-credit.js';
import type { Prediction } from '../core/window.js';
import type { LabelEvent } from '../events/event-tracker.js';
import { createOrderedEvents } from '../events/ordered-events.js';
import type { LabelEventSettings } from '../events/settings.js';
import { createPredictionOrder } from '../pipeline/prediction-order.js';
import type { Holdings, PredictionPipelineRunner } from '../pipeline/prediction-pipeline.js';
import type { McapRecorder } from '../record/recorder.js';
import { type ReplayOptions, replayInputs } from '../record/replay.js';

export interface ReplayRunOptions extends Omit<ReplayOptions, 'credit' | 'loopGap'> {
  /** Also write the inputs and the new predictions here (`braid replay --out FILE.mcap`). */
  readonly recorder?: McapRecorder;
  /** Model id saved with each recorded prediction. */
  readonly model?: string;
  /**
   * Each label's on/off events (docs/events.md), told in order with the predictions (each after the one that made
   * it) and written to the recorder beside them.
   */
  readonly events?: { readonly settings: LabelEventSettings; readonly onEvent?: (event: LabelEvent) => void };
}

export interface ReplayHoldings extends Holdings {
  /** Predictions waiting in the output order, and the streams it follows. */
  readonly orderedHeld: number;
  readonly orderedStreams: number;
  /** Credits in use per lane (decode, model, record): what the reader is waiting on. */
  readonly credits: Record<string, number>;
  /** Channels the recorder keeps for streams not yet closed. */
  readonly recorderChannels: number;
}

export interface ReplayRun {
  /** Predictions in (window end, stream id) order; identical at any speed. */
  readonly predictions$: Observable<Prediction>;
  /** Counts of what the run holds right now: every one is bounded, for long (looped) replays too. */
  holdings(): ReplayHoldings;
}

/** Writes still queued in the recorder at once before the reader waits. */
const RECORD_CREDITS = 4096;

/**
 * `braid replay`: a recording through the live pipeline, as its producers sent it (opens, events, closes), with the
 * reader waiting on the pipeline's credits so nothing is dropped, and the output put in one order. With a recorder,
 * the inputs (receive time = capture time, so the file depends on the recording only) and the new predictions are
 * written as they pass; a failed write ends the run with its error.
 */
export function replayThroughPipeline(
  file: string,
  pipeline: PredictionPipelineRunner,
  options: ReplayRunOptions = {},
): ReplayRun {
  const credit = new FlowCredit();
  const order = createPredictionOrder();
  const { recorder, model, events, ...replay } = options;
  const labelEvents = events ? createOrderedEvents(events.settings) : undefined;
  const recordLane = recorder ? credit.lane('record', RECORD_CREDITS) : undefined;

  const predictions$ = new Observable<Prediction>((subscriber) => {
    const fail = (error: unknown) => subscriber.error(error);
    let damage: { error: unknown } | undefined;
    const record = (write: Promise<void>): void => {
      recordLane?.take();
      write.then(() => recordLane?.give(), fail);
    };
    const inputs$ = replayInputs(file, { ...replay, loopGap: pipeline.windowing.hop, credit }).pipe(
      tap((input: StreamInput) => {
        if (!recorder) return;
        if (isStreamControl(input)) {
          if (input.control === 'close') recorder.releaseStream(input.streamId, 'event').catch(fail);
          return;
        }
        record(recorder.write(input as AnySourceEvent, input.time));
      }),
      // A file damaged part-way (a chunk that fails its CRC or decompression) ends the input where the damage is:
      // the windows of everything read before it are put out, the same on every run, and then the run fails.
      catchError((error: unknown) => {
        damage = { error };
        return EMPTY;
      }),
    );
    return pipeline
      .run(inputs$, {
        credit,
        onStream: (mark) => {
          // Before the order hears of it: the end may release predictions past the stream's closing events.
          if (mark.state === 'end') labelEvents?.ended(mark.streamId);
          order.mark(mark);
          if (mark.state === 'end') recorder?.releaseStream(mark.streamId, 'prediction').catch(fail);
        },
      })
      .pipe(
        // Written as they come, before the ordering: the stream's `end` mark, which frees its channel in the
        // recorder, follows its last prediction here. Readers sort by log time, so the file reads the same.
        tap((p) => {
          labelEvents?.seen(p);
          if (recorder) record(recorder.writePrediction(p, { receiveTime: p.windowEnd, model }));
        }),
        order.operator,
      )
      .pipe(
        labelEvents
          ? (ordered$) =>
              new Observable<Prediction>((sink) =>
                ordered$.pipe(labelEvents.operator).subscribe({
                  next: (item) => {
                    if (item.type === 'prediction') sink.next(item.prediction);
                    else if (item.type === 'event') {
                      // Receive time = the event's time, so the file depends on the recording only.
                      if (recorder)
                        record(recorder.writeLabelEvent(item.event, { receiveTime: item.event.time, model }));
                      events?.onEvent?.(item.event);
                    } else recorder?.releaseStream(item.streamId, 'label_event').catch(fail);
                  },
                  error: (e) => sink.error(e),
                  complete: () => sink.complete(),
                }),
              )
          : (ordered$) => ordered$,
        (predicted$) =>
          concat(
            predicted$,
            defer(() => (damage === undefined ? EMPTY : throwError(() => damage?.error))),
          ),
      )
      .subscribe(subscriber);
  });

  return {
    predictions$,
    holdings: () => {
      const held = order.held();
      return {
        ...pipeline.holdings(),
        orderedHeld: held.predictions,
        orderedStreams: held.streams,
        credits: Object.fromEntries(Object.entries(credit.snapshot()).map(([k, v]) => [k, v.inUse])),
        recorderChannels: recorder?.openChannels ?? 0,
      };
    },
  };
}
