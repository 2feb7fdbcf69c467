// braid demo page: streams the microphone (at the device's own rate: the server resamples), the camera (small raw
// grayscale frames) and typed text to /ingest through braid's client library, which reconnects and resumes by itself;
// marks labels on the live stream (click or hold a key), so `braid serve --record` makes training data from the page;
// subscribes to predictions and charts every label, with each label's on/off events (docs/events.md) as shaded spans.
// Protocol: docs/protocol.md.
import { connectProducer, subscribe } from '/lib/client/index.js';

const $ = (id) => document.getElementById(id);
const nowMicros = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
const token = new URLSearchParams(location.search).get('token') ?? undefined;
const base = location.origin;

const state = {
  streamId: `browser-${Math.random().toString(36).slice(2, 8)}`,
  labels: [],
  inputs: { audioSampleRate: 16000, video: { width: 64, height: 48, format: 'gray' } },
  watching: null,
  series: { t: [], scores: [] },
  /** Per label, the watched stream's on spans in capture seconds: { from, to } (to null while on). */
  spans: {},
  events: 0,
  count: 0,
  dropped: 0,
  chart: null,
  producer: null,
  subscription: null,
  stopCapture: null,
  status: 'idle',
  /** Labels marked on, by name (sent as label events while capturing). */
  marked: {},
  audioRate: null,
};
window.__braid = state; // for tests and curious users

function setStatus(text) {
  state.status = text;
  $('status').textContent = text;
}

function showError(text) {
  $('error').textContent = text;
}

const labelColor = (i, alpha = 1) => `hsla(${(i * 360) / state.labels.length}, 65%, 45%, ${alpha})`;

/**
 * Paints each label's on spans under the lines, in the label's colour, each label in its own lane (a horizontal band
 * of the plot) so that labels on at once stay apart.
 */
function drawSpans(u) {
  const { ctx } = u;
  const { left, top, width, height } = u.bbox;
  const last = state.series.t.at(-1);
  const lane = height / Math.max(1, state.labels.length);
  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top, width, height);
  ctx.clip();
  state.labels.forEach((label, i) => {
    ctx.fillStyle = labelColor(i, 0.22);
    for (const span of state.spans[label] ?? []) {
      const x0 = u.valToPos(span.from, 'x', true);
      const x1 = u.valToPos(span.to ?? last ?? span.from, 'x', true);
      if (x1 > x0) ctx.fillRect(x0, top + i * lane, x1 - x0, lane);
    }
  });
  ctx.restore();
}

function onEvent(e) {
  if (e.streamId !== state.watching) return;
  state.events++;
  const spans = (state.spans[e.label] ??= []);
  const t = e.time / 1e6;
  if (e.state === 'on') spans.push({ from: t, to: null });
  else if (spans.length > 0 && spans.at(-1).to === null) spans.at(-1).to = t;
  // Spans that ended before the chart's first point are gone from view.
  const first = state.series.t[0];
  if (first !== undefined) state.spans[e.label] = spans.filter((s) => s.to === null || s.to >= first);
  state.chart?.redraw(false);
}

function resetChart() {
  state.series = { t: [], scores: state.labels.map(() => []) };
  state.spans = {};
  state.count = 0;
  $('chart').innerHTML = '';
  const series = [{}, ...state.labels.map((label, i) => ({ label, stroke: labelColor(i), width: 2 }))];
  state.chart = new uPlot(
    {
      width: Math.max(400, $('chart').clientWidth || 700),
      height: 320,
      series,
      scales: { y: { range: [0, 1] } },
      axes: [{}, { label: 'score' }],
      hooks: { drawClear: [drawSpans] },
    },
    [[], ...state.labels.map(() => [])],
    $('chart'),
  );
}

function onPrediction(p) {
  if (p.streamId !== state.watching) return;
  state.count++;
  if (p.dropped) state.dropped += p.dropped;
  state.series.t.push(p.windowEnd / 1e6);
  state.labels.forEach((label, i) => {
    state.series.scores[i].push(p.scores[label] ?? null);
  });
  if (state.series.t.length > 240) {
    state.series.t.shift();
    for (const s of state.series.scores) s.shift();
  }
  state.chart?.setData([state.series.t, ...state.series.scores]);
  $('latency').textContent = `${p.latencyMs.toFixed(0)} ms`;
  $('count').textContent = String(state.count);
  $('dropped').textContent = String(state.dropped);
  $('scores').innerHTML = state.labels
    .map(
      (l) =>
        `<span>${l}</span><div class="bar" style="width:${Math.round((p.scores[l] ?? 0) * 100)}%"></div><span>${(p.scores[l] ?? 0).toFixed(2)}</span>`,
    )
    .join('');
}

function watch(streamId) {
  state.watching = streamId;
  resetChart();
}

function addStreamOption(id) {
  if ([...$('watch').options].some((o) => o.value === id)) return;
  $('watch').add(new Option(id === state.streamId ? `${id} (you)` : id, id));
  if (!state.watching) watch(id);
}

function removeStreamOption(id) {
  const option = [...$('watch').options].find((o) => o.value === id);
  if (option) option.remove();
  if (state.watching === id && id !== state.streamId) {
    const next = $('watch').options[0]?.value ?? null;
    $('watch').value = next ?? '';
    if (next) watch(next);
    else state.watching = null;
  }
}

function startSubscriber() {
  state.subscription = subscribe({
    url: base,
    token,
    streams: '*',
    events: true,
    onMessage: (m) => {
      if (m.type === 'event') onEvent(m);
      else if (m.type === 'welcome') {
        state.labels = m.labels;
        renderLabelButtons();
        for (const id of m.streams) addStreamOption(id);
        if (state.watching) watch(state.watching);
      } else if (m.type === 'stream') {
        if (m.event === 'opened' || m.event === 'resumed') addStreamOption(m.streamId);
        else if (m.event === 'closed') removeStreamOption(m.streamId);
      } else if (m.type === 'error') showError(`server: ${m.code}: ${m.message}`);
    },
  });
  (async () => {
    for await (const p of state.subscription) onPrediction(p);
  })();
}

/** Fills the microphone and camera pickers (labels appear once the page has permission). */
async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [kind, select] of [
    ['audioinput', $('mic-device')],
    ['videoinput', $('cam-device')],
  ]) {
    const chosen = select.value;
    select.innerHTML = '';
    select.add(new Option('default', ''));
    const found = devices.filter((d) => d.kind === kind);
    for (const [i, d] of found.entries()) select.add(new Option(d.label || `${kind} ${i + 1}`, d.deviceId));
    select.value = [...select.options].some((o) => o.value === chosen) ? chosen : '';
  }
}

function renderLabelButtons() {
  $('labels').innerHTML = '';
  state.labels.forEach((label, i) => {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'label';
    button.dataset.label = label;
    button.textContent = `${i + 1} ${label}`;
    button.title = `click to toggle, or hold the key ${i + 1}`;
    button.onclick = () => markLabel(label, !state.marked[label]);
    $('labels').append(button);
  });
}

/** Marks a label on or off from now on: a label event on the live stream (ground truth for `braid train`). */
function markLabel(label, on) {
  if (Boolean(state.marked[label]) === on) return;
  state.marked[label] = on;
  for (const b of document.querySelectorAll('button.label'))
    b.classList.toggle('on', Boolean(state.marked[b.dataset.label]));
  state.producer?.sendLabels({ [label]: on ? 1 : 0 });
}

async function start() {
  $('start').disabled = true;
  showError('');
  const useMic = $('use-mic').checked;
  const useCam = $('use-cam').checked;
  if (!useMic && !useCam) {
    showError('choose the microphone, the camera or both');
    $('start').disabled = false;
    return;
  }
  // Made within the click, before anything awaits: browsers let an AudioContext run only from a user gesture.
  // The device's own rate: no resampling in the browser; the server resamples for the model.
  const audio = useMic ? new AudioContext() : null;
  try {
    const micId = $('mic-device').value;
    const camId = $('cam-device').value;
    const media = await navigator.mediaDevices.getUserMedia({
      audio: useMic ? { channelCount: 1, ...(micId && { deviceId: { exact: micId } }) } : false,
      video: useCam ? { width: 320, height: 240, ...(camId && { deviceId: { exact: camId } }) } : false,
    });
    await listDevices();
    await audio?.resume();
    state.audioRate = audio?.sampleRate ?? null;
    state.audioContext = audio;
    const { width, height } = state.inputs.video;
    const producer = await connectProducer({
      url: base,
      token,
      streamId: state.streamId,
      ...(audio && { audio: { sampleRate: audio.sampleRate } }),
      ...(useCam && { video: { format: 'gray', width, height } }),
      text: true,
      labels: true,
      onError: (e) => showError(`ingest: ${e.code}: ${e.message}`),
      onStatus: (s, detail) => {
        if (s === 'reconnecting') setStatus(`reconnecting${detail ? ` ${detail}` : ''}…`);
        if (s === 'ready')
          setStatus(`streaming as ${state.streamId}${detail === 'resumed' ? ' (resumed)' : ''}`);
      },
    });
    state.producer = producer;
    /** Whether this server takes progress bounds inside binary frames (earlier ones ignore the flag). */
    const frameBounds = producer.ready.accepts?.frameBounds === true;
    // Callbacks already queued (a worklet frame, a timer) may run after Stop: they must not send.
    let live = true;
    const stops = [
      () => {
        live = false;
      },
      () => {
        for (const track of media.getTracks()) track.stop();
      },
    ];
    /** Capture time of the next audio frame: what the microphone has not delivered yet is not promised away. */
    let nextAudio = null;
    /** The highest progress bound sent (by a flagged frame or a progress message): bounds only go up. */
    let promised = Number.NEGATIVE_INFINITY;
    /** A timer that promises an audio frame's end once the clock reaches it (see the frames below). */
    let frameEndTimer = null;
    const promise = (bound) => {
      if (!live || bound <= promised) return;
      producer.progress(bound);
      promised = bound;
    };

    if (audio) {
      await audio.audioWorklet.addModule('/pcm-worklet.js');
      const node = new AudioWorkletNode(audio, 'pcm-framer');
      audio.createMediaStreamSource(media).connect(node);
      // Firefox runs a graph only when it reaches the destination; the framer outputs silence.
      node.connect(audio.destination);
      let start = null;
      node.port.onmessage = ({ data }) => {
        if (!live) return;
        const pcm = new Int16Array(data.pcm);
        const now = nowMicros();
        // Time from the sample count; the first frame is stamped with the clock, back-dated by its length and by
        // how long its message waited for this (busy) thread, in the context's time: stamped when it is handled,
        // every frame after it would be that wait ahead of the clock that stamps video and text.
        if (start === null) {
          const waited = Number.isFinite(data.endedAt) ? Math.max(0, audio.currentTime - data.endedAt) : 0;
          start =
            now -
            Math.round(waited * 1e6) -
            Math.round(((data.samplesBefore + pcm.length) * 1e6) / audio.sampleRate);
          // From now on the worklet also ends a frame where a window of this stream ends (ready.windowing), so
          // the window closes as its last sample arrives, not when the frame running past it is whole.
          const { origin, size, hop } = producer.ready.windowing;
          if (frameBounds && origin !== undefined)
            node.port.postMessage({ start, grid: { origin, size, hop } });
        }
        /** Capture time of a sample, from the sample count (what the server checks audio times against). */
        const timeOf = (sample) => start + Math.floor((sample * 1e6) / audio.sampleRate);
        const frameEnd = timeOf(data.samplesBefore + pcm.length);
        // Each frame is also the stream's progress bound where the server takes one (no separate message) — but
        // only if its end is not ahead of the clock: a video frame or text captured next is stamped with the clock,
        // and a bound past it would make that event late. The audio clock does run ahead now and then, by a few ms
        // of jitter between the two clocks (Firefox) or when the first stamp's wait was misjudged: then a progress
        // message promises the frame's end once the clock has reached it (within the next frame's 20 ms; the 20 ms
        // progress below covers the rest), so the window still closes right after its last sample.
        const bound = frameBounds && frameEnd <= now && frameEnd > promised;
        producer.sendAudio(pcm, timeOf(data.samplesBefore), { bound });
        if (bound) promised = frameEnd;
        else if (frameBounds && frameEndTimer === null && frameEnd > now && frameEnd - now <= 20_000) {
          frameEndTimer = setTimeout(
            () => {
              frameEndTimer = null;
              promise(Math.min(frameEnd, nowMicros()));
            },
            Math.ceil((frameEnd - now) / 1000),
          );
        }
        nextAudio = frameEnd;
      };
      stops.push(() => audio.close());
    }

    if (useCam) {
      // Draw the camera into a small canvas at 10 fps and send raw grayscale.
      $('video').srcObject = media;
      const canvas = $('thumb');
      canvas.width = width;
      canvas.height = height;
      const ctx = canvas.getContext('2d', { willReadFrequently: true });
      const timer = setInterval(() => {
        if (!live || $('video').readyState < 2) return;
        const time = nowMicros();
        ctx.drawImage($('video'), 0, 0, width, height);
        const image = ctx.getImageData(0, 0, width, height);
        const gray = new Uint8Array(width * height);
        for (let i = 0, j = 0; i < image.data.length; i += 4, j++) {
          const g = (image.data[i] * 77 + image.data[i + 1] * 150 + image.data[i + 2] * 29) >> 8;
          gray[j] = g;
          image.data[i] = image.data[i + 1] = image.data[i + 2] = g;
        }
        ctx.putImageData(image, 0, 0); // show exactly what the model gets
        producer.sendVideo(gray, time);
      }, 100);
      stops.push(() => clearInterval(timer));
    }

    // Progress bounds every 20 ms: everything captured before this time has been sent (the next audio frame's start,
    // or now, whichever is earlier), so windows close without waiting for the next frame of the slowest modality.
    // Where audio frames carry the bound themselves (ready.accepts.frameBounds) this sends only what they did not.
    const progress = setInterval(() => {
      if (!live || frameEndTimer !== null || (audio && nextAudio === null)) return;
      promise(audio ? Math.min(nextAudio, nowMicros()) : nowMicros());
    }, 20);
    stops.push(() => {
      clearInterval(progress);
      clearTimeout(frameEndTimer);
    });

    // Text: what was typed since the last event, every 250 ms while typing, and on Enter.
    let sent = '';
    const flushText = () => {
      const value = $('text').value;
      if (value === sent) return;
      const typed = value.startsWith(sent) ? value.slice(sent.length) : value;
      sent = value;
      if (live && typed.trim() !== '') producer.sendText(typed);
    };
    const textTimer = setInterval(flushText, 250);
    stops.push(() => clearInterval(textTimer));
    $('text').onkeydown = (e) => {
      if (e.key !== 'Enter') return;
      flushText();
      $('text').value = '';
      sent = '';
    };

    state.stopCapture = async () => {
      for (const stop of stops) stop();
      await producer.close();
      state.producer = null;
    };
    addStreamOption(state.streamId);
    $('watch').value = state.streamId;
    watch(state.streamId);
    $('stop').disabled = false;
    setStatus(`streaming as ${state.streamId}`);
  } catch (error) {
    audio?.close();
    showError(`${error.name ?? 'Error'}: ${error.message}`);
    $('start').disabled = false;
  }
}

async function stop() {
  $('stop').disabled = true;
  await state.stopCapture?.();
  state.stopCapture = null;
  $('start').disabled = false;
  setStatus('stopped');
}

// Hold a digit key to mark the label with that number; releasing it marks it off (not while typing text).
document.addEventListener('keydown', (e) => {
  if (e.repeat || e.target === $('text')) return;
  const label = state.labels[Number(e.key) - 1];
  if (label) markLabel(label, true);
});
document.addEventListener('keyup', (e) => {
  if (e.target === $('text')) return;
  const label = state.labels[Number(e.key) - 1];
  if (label) markLabel(label, false);
});

async function init() {
  try {
    const info = await (await fetch(`/api/streams${location.search}`)).json();
    state.labels = info.labels;
    if (info.inputs) state.inputs = info.inputs;
  } catch {
    // the welcome message carries the labels too
  }
  renderLabelButtons();
  resetChart();
  startSubscriber();
  listDevices().catch(() => {});
  $('start').onclick = start;
  $('stop').onclick = stop;
  $('watch').onchange = () => watch($('watch').value);
}

init();
