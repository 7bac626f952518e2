import type * as grpc from '@grpc/grpc-js';
import type { LoadReply } from '../api/image-loader.js';
import { UnavailableError, logLevelOf } from '../errors.js';
import type { ImageService } from '../image/service.js';
import { elapsedMs } from '../util/time.js';
import { toServiceError } from './status.js';
import type { WrapOptions } from './wrap.js';

/**
 * The handlers of tscri's ImageLoader (api/image-loader.ts): the call itself is the archive
 * stream. As for the CRI calls: UNAVAILABLE until ready, logged, errors mapped to a status;
 * a client that goes away aborts the load, which then removes what it stored.
 */
export function imageLoaderHandlers(images: ImageService, options: WrapOptions): { Load: grpc.handleClientStreamingCall<Buffer, LoadReply> } {
  return {
    Load: (call, callback) => {
      const started = process.hrtime.bigint();
      const log = options.log.child({ rpc: 'Load' });
      if (!options.isReady()) {
        callback(toServiceError(new UnavailableError('tscri is starting: state recovery has not finished')));
        return;
      }
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort(new Error('call cancelled by the client')));
      log.info('request');
      images.load(call, { log, signal: abort.signal }).then(
        (loaded) => {
          log.info({ ms: elapsedMs(started), images: loaded.map((i) => i.id) }, 'done');
          callback(null, { images: loaded });
        },
        (err: unknown) => {
          log[logLevelOf(err)]({ ms: elapsedMs(started), err }, 'failed');
          callback(toServiceError(err));
        },
      );
    },
  };
}
