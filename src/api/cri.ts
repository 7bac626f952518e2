import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType } from './generated/api.js';

/**
 * The CRI runtime.v1 API. Types exported from this module are messages as grpc-js decodes
 * them: every field present with its default. Replies are built with the optional-field
 * forms from ./wire.js.
 */
export type * from './generated/decoded.js';

export const PROTO_PATH = fileURLToPath(new URL('../../proto/runtime/v1/api.proto', import.meta.url));

/**
 * keepCase keeps the proto's snake_case names, so code and wire names match the published
 * API; int64 values arrive as decimal strings because nanosecond timestamps exceed 2^53.
 */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

export type CriPackage = ProtoGrpcType['runtime']['v1'];

let loaded: CriPackage | undefined;

/** The runtime.v1 package with its service definitions and client constructors (loaded once). */
export function loadCri(): CriPackage {
  if (!loaded) {
    const definition = protoLoader.loadSync(PROTO_PATH, LOADER_OPTIONS);
    loaded = (grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType).runtime.v1;
  }
  return loaded;
}
