import type { ImageServiceHandlers } from '../api/generated/runtime/v1/ImageService.js';
import type { ImageService } from '../image/service.js';
import { unary, unimplementedStream, type WrapOptions } from './wrap.js';

/** The ImageService handlers: unpack the request, call the image service. */
export function imageServiceHandlers(images: ImageService, options: WrapOptions): ImageServiceHandlers {
  return {
    PullImage: unary('PullImage', options, async (req, ctx) => ({
      image_ref: await images.pull(req.image, req.auth, ctx.log, ctx.signal),
    })),
    ListImages: unary('ListImages', options, async (req) => ({ images: images.list(req.filter) })),
    StreamImages: unimplementedStream('StreamImages'),
    ImageStatus: unary('ImageStatus', options, async (req) => images.status(req.image, req.verbose)),
    RemoveImage: unary('RemoveImage', options, async (req, ctx) => {
      await images.remove(req.image, ctx.log);
      return {};
    }),
    ImageFsInfo: unary('ImageFsInfo', options, () => images.fsInfo()),
  };
}
