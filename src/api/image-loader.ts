/**
 * tscri's own side service on the CRI socket: `tscri load` streams an image archive to the
 * daemon, which the CRI cannot (it has no load call). One client-streaming method whose
 * requests are raw chunks of the archive and whose reply is JSON, so no .proto is needed.
 */
import type * as grpc from '@grpc/grpc-js';

export const IMAGE_LOADER_SERVICE = 'tscri.v1.ImageLoader';

/** One image the archive held. */
export interface LoadedImageReply {
  id: string;
  repoTags: string[];
}

export interface LoadReply {
  images: LoadedImageReply[];
}

/** The method as grpc-js describes it; both the server and the CLI use this definition. */
export const imageLoaderDefinition = {
  Load: {
    path: `/${IMAGE_LOADER_SERVICE}/Load`,
    requestStream: true,
    responseStream: false,
    requestSerialize: (chunk: Buffer): Buffer => chunk,
    requestDeserialize: (bytes: Buffer): Buffer => bytes,
    responseSerialize: (reply: LoadReply): Buffer => Buffer.from(JSON.stringify(reply)),
    responseDeserialize: (bytes: Buffer): LoadReply => JSON.parse(bytes.toString('utf8')) as LoadReply,
  },
} satisfies grpc.ServiceDefinition;

/** Chunks the CLI sends: large enough to keep the socket busy, far below the message limit. */
export const LOAD_CHUNK_BYTES = 1024 * 1024;
