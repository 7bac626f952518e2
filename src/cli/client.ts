import * as grpc from '@grpc/grpc-js';
import { loadCri } from '../api/cri.js';
import type { ImageServiceClient } from '../api/generated/runtime/v1/ImageService.js';
import type { RuntimeServiceClient } from '../api/generated/runtime/v1/RuntimeService.js';

/** Request and reply types of a generated unary method (read off its last overload). */
type RequestOf<M> = M extends (argument: infer Req, callback: grpc.requestCallback<infer _Res>) => grpc.ClientUnaryCall ? Req : never;
type ReplyOf<M> = M extends (argument: infer _Req, callback: grpc.requestCallback<infer Res>) => grpc.ClientUnaryCall ? Res : never;

type UnaryFn = (request: unknown, options: grpc.CallOptions, callback: (err: grpc.ServiceError | null, res?: unknown) => void) => void;

/** A unary call by method name, as a promise with a deadline; the error keeps its gRPC code. */
export function call<C extends grpc.Client, K extends keyof C & string>(
  client: C,
  method: K,
  request: RequestOf<C[K]>,
  timeoutMs: number,
): Promise<ReplyOf<C[K]>> {
  const fn = client[method] as unknown as UnaryFn;
  return new Promise((resolve, reject) => {
    fn.call(client, request, { deadline: Date.now() + timeoutMs }, (err, res) =>
      err ? reject(err) : resolve(res as ReplyOf<C[K]>),
    );
  });
}

/** Clients of both CRI services on one endpoint (unix:///path or a bare path). */
export interface CriClients {
  runtime: RuntimeServiceClient;
  image: ImageServiceClient;
  close(): void;
}

/** kubelet's own limit for CRI replies: an ExecSync may fill it. */
const MAX_REPLY_BYTES = 16 * 1024 * 1024;

export function connect(runtimeEndpoint: string, imageEndpoint = runtimeEndpoint): CriClients {
  const cri = loadCri();
  const credentials = grpc.credentials.createInsecure();
  const options = { 'grpc.max_receive_message_length': MAX_REPLY_BYTES };
  const runtime = new cri.RuntimeService(grpcAddress(runtimeEndpoint), credentials, options);
  const image = new cri.ImageService(grpcAddress(imageEndpoint), credentials, options);
  return {
    runtime,
    image,
    close() {
      runtime.close();
      image.close();
    },
  };
}

/** The address grpc-js dials for an endpoint (unix:///path or a bare path). */
export function grpcAddress(endpoint: string): string {
  if (endpoint.startsWith('unix://')) return endpoint;
  if (endpoint.startsWith('unix:')) return `unix://${endpoint.slice('unix:'.length)}`;
  if (endpoint.startsWith('/')) return `unix://${endpoint}`;
  return endpoint;
}
