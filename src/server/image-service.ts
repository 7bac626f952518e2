import type { ImageServiceHandlers } from '../api/generated/runtime/v1/ImageService.js';
import { unimplemented, unimplementedStream } from './wrap.js';

/** The ImageService handlers. */
export function imageServiceHandlers(): ImageServiceHandlers {
  return {
    ListImages: unimplemented('ListImages'),
    StreamImages: unimplementedStream('StreamImages'),
    ImageStatus: unimplemented('ImageStatus'),
    PullImage: unimplemented('PullImage'),
    RemoveImage: unimplemented('RemoveImage'),
    ImageFsInfo: unimplemented('ImageFsInfo'),
  };
}
