import { type MonoTypeOperatorFunction, Observable } from 'rxjs';
import { capturedThrough, isStreamControl, type Modality, type StreamInput } from '../core/events.js';
import type { Micros } from '../core/time.js';

/**
 * Progress bounds for in-process capture (`braid live`), as the demo page sends over WebSocket: after each event of a
 * `gating` modality, a `progress` control at the lowest capture time every gating modality of that stream has
 * reached ({@link capturedThrough}: an audio frame's end, a video frame's time), whenever that rose. Each source
 * (a recorder, ffmpeg) delivers its own events in capture order, so the bound is the promise a producer makes: a
 * window closes once the last of its modalities has covered its end, instead of waiting for a frame past the
 * windowing's out-of-orderness allowance (40 ms by default) after it.
 *
 * No bound is sent until every gating modality has sent an event, and a source that ends or stalls holds the bound
 * where it is: the aligner's watermarks and idle timeout go on as without bounds. Sparse modalities (text) are not
 * gating and are not waited for; like any non-gating event, one captured before a bound but delivered after it is
 * counted late.
 */
export function withProgressBounds(gating: readonly Modality[]): MonoTypeOperatorFunction<StreamInput> {
  const gates = new Set(gating);
  return (input$) =>
    new Observable<StreamInput>((subscriber) => {
      // Per stream: how far each gating modality has reached, and the last bound sent.
      const reached = new Map<string, Map<Modality, Micros>>();
      const sent = new Map<string, Micros>();
      return input$.subscribe({
        next: (input) => {
          subscriber.next(input);
          if (isStreamControl(input)) {
            if (input.control === 'close' || input.control === 'restart') {
              reached.delete(input.streamId);
              sent.delete(input.streamId);
            }
            return;
          }
          if (!gates.has(input.modality)) return;
          let byModality = reached.get(input.streamId);
          if (byModality === undefined) reached.set(input.streamId, (byModality = new Map()));
          byModality.set(
            input.modality,
            Math.max(byModality.get(input.modality) ?? 0, capturedThrough(input)),
          );
          if (byModality.size < gates.size) return;
          const bound = Math.min(...byModality.values());
          if (bound <= (sent.get(input.streamId) ?? Number.NEGATIVE_INFINITY)) return;
          sent.set(input.streamId, bound);
          subscriber.next({ control: 'progress', streamId: input.streamId, time: bound });
        },
        error: (error: unknown) => subscriber.error(error),
        complete: () => subscriber.complete(),
      });
    });
}
