// braid's public API: what applications, pipelines and tools build on, one stage a block. Everything else is
// internal and may change; the client library is `braid/client`.

// Alignment by capture time.
export { collectEvents, type WindowAggregator } from './align/aggregator.js';
export {
  type Alignment,
  type AlignmentOptions,
  alignWindows,
  createAlignment,
} from './align/align-windows.js';
export type { AlignOptions } from './align/options.js';
export { streamOrigin, streamPhase } from './align/window-aligner.js';
export {
  DEFAULT_WINDOWING,
  describeWindowing,
  type ModelWindowing,
  modelWindowing,
  parseWindowing,
  type SavedWindowing,
  saveWindowing,
  type WindowingConfig,
} from './align/windowing.js';
export {
  BadFrameError,
  BraidError,
  type BraidErrorCode,
  InvalidEventError,
  InvalidOptionError,
  SourceError,
} from './core/errors.js';
// Core: events, windows, predictions, time, errors.
export type { AnySourceEvent, Modality, SourceEvent, StreamControl, StreamInput } from './core/events.js';
export { capturedThrough, isStreamControl, MODALITIES, validateEvent } from './core/events.js';
export { CreditLane, FlowCredit } from './core/flow-credit.js';
export type { InputRefusal } from './core/refusal.js';
export { audioFrameTime, type Micros, ms, parseDuration, seconds, wallClockMicros } from './core/time.js';
export type { Prediction, Window } from './core/window.js';
// On/off events of labels, with hysteresis (docs/events.md).
export { EventTracker, eventLine, type LabelEvent } from './events/event-tracker.js';
export { createOrderedEvents, type OrderedEvents, type PredictionOrEvent } from './events/ordered-events.js';
export {
  DEFAULT_EVENT_SETTINGS,
  type EventSettings,
  type LabelEventSettings,
  parseEventsOption,
  resolveEventSettings,
} from './events/settings.js';
// Features.
export { createFeatureAggregator } from './features/aggregator.js';
export { DEFAULT_FEATURE_CONFIG, type FeatureConfig, featureLayout } from './features/config.js';
// The model.
export { loadModel, modelId, saveModel } from './model/model-io.js';
export { predictWindows } from './model/predict-windows.js';
export { type FusedWindow, ModelRuntime, type RuntimeOptions } from './model/runtime.js';
export { selectBackend } from './model/select-backend.js';
export type { Model } from './model/weights.js';
// The live pipeline.
export { createFeatureStage } from './pipeline/feature-stage.js';
export { createPredictionOrder, type PredictionOrder, predictionLine } from './pipeline/prediction-order.js';
export {
  type Holdings,
  type PipelineOptions,
  type PipelineSinks,
  PredictionPipelineRunner,
  REPLAY_QUEUE,
  type RunOptions,
} from './pipeline/prediction-pipeline.js';
export type { StreamMark } from './pipeline/stream-lifecycle.js';
export { parseTopicMapping, type TopicMapping } from './record/channel-map.js';
export { RecordingError } from './record/errors.js';
export { diffPredictions, type PredictionDiff } from './record/prediction-diff.js';
export { recordTo } from './record/record-to.js';
// Record and replay (MCAP).
export { McapRecorder, type PredictionWrite, type RecorderOptions } from './record/recorder.js';
export {
  type RecordedLabelEvent,
  type RecordedPrediction,
  RecordingReader,
  readPredictions,
  readRecording,
  recordingInfo,
} from './record/recording-reader.js';
export { type ReplayOptions, replayInputs, replayRecording } from './record/replay.js';
// The server.
export type { PredictionPipeline } from './server/pipeline.js';
export { PROTOCOL_VERSION, ProtocolError, type ServerMessage } from './server/protocol.js';
export { type BraidServer, type ServerOptions, startServer } from './server/server.js';
// Sources: microphone, camera and video files, audio files, text, synthetic streams.
export { audioFileSource } from './sources/audio-file.js';
export { captureFor } from './sources/capture-duration.js';
export { DropCounter } from './sources/drop-counter.js';
export { microphoneSource } from './sources/microphone.js';
export { withProgressBounds } from './sources/progress-bounds.js';
export { syntheticSource } from './sources/synthetic.js';
export { ndjsonTextSource } from './sources/text.js';
export { videoSource } from './sources/video.js';
