import { foxgloveEnumSchemas, foxgloveMessageSchemas, generateProto } from '@foxglove/schemas/internal.js';
import protobuf from 'protobufjs';
import descriptor from 'protobufjs/ext/descriptor/index.js';
import type { SchemaName } from './schemas.js';

/**
 * The protobuf form of braid's schemas (format version 2). Foxglove's come from @foxglove/schemas' own generator, so
 * they are exactly the `.proto` Foxglove publishes; braid's own are defined here. Each is stored in the file as a
 * FileDescriptorSet (MCAP's `protobuf` schema encoding), which is what Foxglove and any protobuf reader decode with.
 */
const BRAID_PROTO = `
syntax = "proto3";
import "google/protobuf/timestamp.proto";
package braid;

// A piece of text (transcript, caption, chat line) at its capture time
message Text {
  google.protobuf.Timestamp timestamp = 1;
  string text = 2;
}

// A named value. Declared as a message, not a map, so that every protobuf reader (Foxglove's panels among them) shows
// a list of { key, value }: on the wire it is exactly what map<string, double> would be.
message Entry {
  string key = 1;
  double value = 2;
}

// Ground-truth labels: each named label holds its value (1 on, 0 off) from this time on
message Labels {
  google.protobuf.Timestamp timestamp = 1;
  repeated Entry labels = 2;
}

// Which modalities had events in a window
message Presence {
  bool audio = 1;
  bool video = 2;
  bool text = 3;
  bool label = 4;
}

// A model's scores for one closed window of one stream; times are µs of originating time
message Prediction {
  google.protobuf.Timestamp timestamp = 1;
  string streamId = 2;
  int64 windowIndex = 3;
  int64 windowStart = 4;
  int64 windowEnd = 5;
  // One entry per label, in the model's order: plot one with scores[:]{key=="speech"}.value
  repeated Entry scores = 6;
  Presence present = 7;
  // The model that made it, e.g. demo@1a2b3c4d5e6f
  string model = 8;
}

// A label of a stream turned on or off (hysteresis over the model's scores); times are µs
message LabelEvent {
  google.protobuf.Timestamp timestamp = 1;
  string streamId = 2;
  string label = 3;
  // on | off
  string state = 4;
  int64 time = 5;
  double score = 6;
  int64 windowIndex = 7;
  // The off of a label that was on when its stream closed
  bool closed = 8;
  string model = 9;
}
`;

const FOXGLOVE: Readonly<Record<string, keyof typeof foxgloveMessageSchemas>> = {
  'foxglove.RawAudio': 'RawAudio',
  'foxglove.RawImage': 'RawImage',
  'foxglove.CompressedImage': 'CompressedImage',
  'foxglove.Log': 'Log',
};

const TIMESTAMP = protobuf.common.get('google/protobuf/timestamp.proto') as protobuf.INamespace;

/** One .proto text parsed into a root of its own, with google.protobuf.Timestamp, as protoc would see it. */
function rootOf(text: string): protobuf.Root {
  const root = new protobuf.Root();
  protobuf.parse(text, root, { keepCase: true });
  root.addJSON(TIMESTAMP.nested ?? {});
  root.resolveAll();
  return root;
}

function protoText(name: SchemaName): string {
  const foxglove = FOXGLOVE[name];
  if (foxglove === undefined) return BRAID_PROTO;
  const schema = foxgloveMessageSchemas[foxglove];
  const enums = Object.values(foxgloveEnumSchemas).filter((e) => e.parentSchemaName === schema.name);
  return generateProto(schema, enums);
}

interface ProtoSchema {
  readonly type: protobuf.Type;
  /** The FileDescriptorSet bytes stored as the MCAP schema's data. */
  readonly data: Uint8Array;
}

const built = new Map<SchemaName, ProtoSchema>();

/** The protobuf type of a schema, for encoding, and its FileDescriptorSet, built once. */
export function protoSchema(name: SchemaName): ProtoSchema {
  let schema = built.get(name);
  if (schema === undefined) {
    const root = rootOf(protoText(name));
    const set = (root as unknown as { toDescriptor(v: string): protobuf.Message }).toDescriptor('proto3');
    schema = {
      type: root.lookupType(name),
      data: descriptor.FileDescriptorSet.encode(set).finish(),
    };
    built.set(name, schema);
  }
  return schema;
}
