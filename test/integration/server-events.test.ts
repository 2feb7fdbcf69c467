import { filter, map, mergeMap, throwError } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import { subscribe } from '../../src/client/subscriber.js';
import type { Prediction } from '../../src/core/window.js';
import { resolveEventSettings } from '../../src/events/settings.js';
import type { ServerMessage } from '../../src/server/protocol.js';
import type { PredictionPipeline } from '../../src/server/server.js';
import { type BraidServer, startServer } from '../../src/server/server.js';
import { countingPipeline } from '../helpers/counting-pipeline.js';
import { connect, inbox, metric, openSockets, roundTrip } from '../helpers/ws-client.js';

const servers: BraidServer[] = [];
afterEach(async () => {
  for (const s of openSockets.splice(0)) s.terminate();
  for (const s of servers.splice(0)) await s.close();
});

/** Events per 100 ms window: n events score n / (n + 1), so 1 → 0.5, 2 → 0.667, 3 → 0.75. */
const COUNTS = [1, 3, 3, 2, 1, 1, 3];
const W = 100_000;

const expectedEvents = [
  { type: 'event', streamId: 'ev-1', label: 'a', state: 'on', time: W, score: 0.75, windowIndex: 1 },
  { type: 'event', streamId: 'ev-1', label: 'a', state: 'off', time: 4 * W, score: 0.5, windowIndex: 4 },
  { type: 'event', streamId: 'ev-1', label: 'a', state: 'on', time: 6 * W, score: 0.75, windowIndex: 6 },
  // The stream closes while on: off at its last window end, marked closed.
  {
    type: 'event',
    streamId: 'ev-1',
    label: 'a',
    state: 'off',
    time: 7 * W,
    score: 0.75,
    windowIndex: 6,
    closed: true,
  },
];

const kinds = (messages: ServerMessage[]) =>
  messages.filter((m) => m.type === 'prediction' || m.type === 'event');

describe('server: events', () => {
  it('sends each subscriber the kinds it opted in to, events right after the prediction that made them', async () => {
    const server = await startServer({
      pipeline: countingPipeline({ labels: ['a'] }),
      port: 0,
      // 0.667 sits between the thresholds: it keeps whatever state the label is in.
      events: resolveEventSettings(['a'], { default: { on: 0.7, off: 0.6 } }),
    });
    servers.push(server);
    const subscribers = await Promise.all(
      [
        { subscribe: ['ev-1'], events: true },
        { subscribe: '*', events: true, predictions: false },
        { subscribe: ['ev-1'] },
      ].map(async (request) => {
        const ws = await connect(server.url, '/subscribe');
        const box = inbox(ws);
        ws.send(JSON.stringify(request));
        return { ws, box, subscribed: await box.next((m) => m.type === 'subscribed') };
      }),
    );
    const [both, eventsOnly, predictionsOnly] = subscribers.map((s) => s.box) as [
      ReturnType<typeof inbox>,
      ReturnType<typeof inbox>,
      ReturnType<typeof inbox>,
    ];
    expect(subscribers.map((s) => s.subscribed)).toMatchObject([
      { predictions: true, events: true },
      { predictions: false, events: true },
      { predictions: true, events: false },
    ]);

    const prod = await connect(server.url, '/ingest');
    prod.send(JSON.stringify({ type: 'hello', version: 2, streamId: 'ev-1', modalities: ['text'] }));
    await inbox(prod).next((m) => m.type === 'ready');
    let seq = 0;
    COUNTS.forEach((n, w) => {
      for (let i = 0; i < n; i++)
        prod.send(JSON.stringify({ type: 'text', time: w * W + i * 10, seq: seq++, text: 'x' }));
    });
    prod.send(JSON.stringify({ type: 'close' }));

    const isClose = (m: ServerMessage) => m.type === 'event' && m.closed === true;
    await Promise.all([both.next(isClose), eventsOnly.next(isClose)]);
    await predictionsOnly.next((m) => m.type === 'prediction' && m.windowIndex === COUNTS.length - 1);
    await Promise.all(subscribers.map((s) => roundTrip(s.ws)));

    // Both: every prediction, each followed by the events it made; the closing off after the last one.
    const order = kinds(both.messages).map((m) =>
      m.type === 'prediction' ? `p${m.windowIndex}` : `${m.type === 'event' && m.state}${m.windowIndex}`,
    );
    expect(order).toEqual(['p0', 'p1', 'on1', 'p2', 'p3', 'p4', 'off4', 'p5', 'p6', 'on6', 'off6']);
    const events = kinds(both.messages).filter((m) => m.type === 'event');
    expect(
      events.map((e) => ({ ...e, score: Math.round((e as { score: number }).score * 100) / 100 })),
    ).toEqual(expectedEvents);
    expect(kinds(eventsOnly.messages)).toEqual(events);
    expect(kinds(predictionsOnly.messages).filter((m) => m.type === 'event')).toEqual([]);
    expect(kinds(predictionsOnly.messages)).toHaveLength(COUNTS.length);

    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(metric(text, 'braid_label_events_total', '{state="on"}')).toBe(2);
    expect(metric(text, 'braid_label_events_total', '{state="off"}')).toBe(2);
  });

  it('refuses a subscription that asks for nothing, naming the field, and keeps the connection', async () => {
    const server = await startServer({ pipeline: countingPipeline(), port: 0 });
    servers.push(server);
    const ws = await connect(server.url, '/subscribe');
    const box = inbox(ws);
    ws.send(JSON.stringify({ subscribe: '*', predictions: false }));
    expect(await box.next((m) => m.type === 'error')).toMatchObject({
      code: 'bad_message',
      message: expect.stringMatching(/^predictions: predictions: false needs events: true/),
    });
    ws.send(JSON.stringify({ subscribe: '*', events: 'yes' }));
    expect(await box.next((m) => m.type === 'error' && /events/.test(m.message))).toMatchObject({
      code: 'bad_message',
    });
    ws.send(JSON.stringify({ subscribe: '*', events: true, predictions: false }));
    expect(await box.next((m) => m.type === 'subscribed')).toMatchObject({
      events: true,
      predictions: false,
    });
  });

  it('ends what was on, marked closed, when the pipeline fails and restarts with fresh state', async () => {
    // Each text is a window scoring 1; the text "boom" makes the pipeline fail, as a crashing model would.
    const pipeline: PredictionPipeline = {
      labels: ['a'],
      run: (input$) =>
        input$.pipe(
          filter((i) => 'modality' in i && i.modality === 'text'),
          map((i) => i as { streamId: string; time: number; seq: number; payload: { text: string } }),
          mergeMap((e) =>
            e.payload.text === 'boom'
              ? throwError(() => new Error('model crashed'))
              : [
                  {
                    streamId: e.streamId,
                    windowIndex: e.seq,
                    windowStart: e.time,
                    windowEnd: e.time + W,
                    scores: { a: 1 },
                    present: { audio: false, video: false, text: true, label: false },
                  } satisfies Prediction,
                ],
          ),
        ),
    };
    const server = await startServer({ pipeline, port: 0, restartBackoff: { initialMs: 10 } });
    servers.push(server);
    const sub = await connect(server.url, '/subscribe');
    const box = inbox(sub);
    sub.send(JSON.stringify({ subscribe: '*', events: true, predictions: false }));
    await box.next((m) => m.type === 'subscribed');
    const prod = await connect(server.url, '/ingest');
    prod.send(JSON.stringify({ type: 'hello', version: 2, streamId: 'crash-1', modalities: ['text'] }));
    await inbox(prod).next((m) => m.type === 'ready');
    prod.send(JSON.stringify({ type: 'text', time: 0, seq: 0, text: 'x' }));
    prod.send(JSON.stringify({ type: 'text', time: W, seq: 1, text: 'x' }));
    prod.send(JSON.stringify({ type: 'text', time: 2 * W, seq: 2, text: 'boom' }));
    const closed = await box.next((m) => m.type === 'event' && m.closed === true);
    expect(kinds(box.messages)).toEqual([
      { type: 'event', streamId: 'crash-1', label: 'a', state: 'on', time: 0, score: 1, windowIndex: 0 },
      closed,
    ]);
    expect(closed).toMatchObject({ state: 'off', time: 2 * W, windowIndex: 1 });
    // After the restart (inputs sent while it is down are lost) the stream starts afresh: a window turns a on again.
    let again: ServerMessage | undefined;
    for (let seq = 3; again === undefined && seq < 200; seq++) {
      prod.send(JSON.stringify({ type: 'text', time: seq * W, seq, text: 'x' }));
      again = await box
        .next((m) => m.type === 'event' && m.state === 'on' && m.windowIndex >= 3, 250)
        .catch(() => undefined);
    }
    expect(again).toMatchObject({ state: 'on', streamId: 'crash-1' });
  });

  it('braid/client asks for events with events: true and hands them to onMessage', async () => {
    const server = await startServer({
      pipeline: countingPipeline({ labels: ['a'] }),
      port: 0,
      events: resolveEventSettings(['a'], { default: { on: 0.7, off: 0.6 } }),
    });
    servers.push(server);
    const got: ServerMessage[] = [];
    let closedOff: () => void = () => {};
    const done = new Promise<void>((r) => (closedOff = r));
    const subscribed = new Promise<void>((r) => {
      const sub = subscribe({
        url: server.url,
        streams: ['ev-1'],
        events: true,
        onStatus: (status) => status === 'subscribed' && r(),
        onMessage: (m) => {
          if (m.type !== 'event') return;
          got.push(m);
          if (m.closed) closedOff();
        },
      });
      done.finally(() => sub.close());
    });
    await subscribed;
    const prod = await connect(server.url, '/ingest');
    prod.send(JSON.stringify({ type: 'hello', version: 2, streamId: 'ev-1', modalities: ['text'] }));
    await inbox(prod).next((m) => m.type === 'ready');
    let seq = 0;
    COUNTS.forEach((n, w) => {
      for (let i = 0; i < n; i++)
        prod.send(JSON.stringify({ type: 'text', time: w * W + i * 10, seq: seq++, text: 'x' }));
    });
    prod.send(JSON.stringify({ type: 'close' }));
    await done;
    expect(got.map((e) => e.type === 'event' && [e.state, e.time])).toEqual(
      expectedEvents.map((e) => [e.state, e.time]),
    );
  });
});
