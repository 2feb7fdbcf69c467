export {
  type ChannelOrigin,
  parseTopicMapping,
  streamIdFromTopic,
  type TopicMapping,
} from './channel-map.js';
export { RecordingError, type RecordingWarning, type WarningListener, WriteBacklogError } from './errors.js';
export {
  diffPredictions,
  type PredictionDiff,
  type StreamDiff,
  type WindowDifference,
} from './prediction-diff.js';
export { type RecordToOptions, recordTo } from './record-to.js';
export { McapRecorder, type PredictionWrite, type RecorderOptions, type RecorderStats } from './recorder.js';
export {
  type ChannelInfo,
  type EventQuery,
  type OpenOptions,
  type ReadOptions,
  type RecordedLabelEvent,
  type RecordedPrediction,
  type RecordingInfo,
  RecordingReader,
  readPredictions,
  readRecording,
  recordingInfo,
  type StreamInfo,
} from './recording-reader.js';
export { type ReplayOptions, replayInputs, replayRecording } from './replay.js';
export { CHANNEL_KEY, FORMAT_VERSION, type MessageEncoding, type SchemaName, topicFor } from './schemas.js';
