// Types of hack/test-images.mjs, for the e2e global setup and test/e2e/images.ts.
import type { Built, Platform } from './lib/images.mjs';

export declare const REPOSITORY_PREFIX: 'tscri-test';

export interface TestImageInfo {
  /** `<registry>/tscri-test/<name>:<tag>` */
  reference: string;
  /** `tscri-test/<name>` */
  repository: string;
  tag: string;
  /** The manifest's digest, or the index's for a multi-platform image. */
  digest: string;
  mediaType: string;
  /** The image id a linux/amd64 pull yields (for an index: its amd64 child's config). */
  configDigest: string | undefined;
  /** Layer blob digests (single-platform images). */
  layers?: string[];
  /** The children of an index. */
  manifests?: { platform: Platform; digest: string; configDigest: string }[];
  /** Set by pushTestImages: false when the tag already pointed at this manifest. */
  pushed?: boolean;
}

/** Every `name:tag` the catalogue holds, known without building anything. */
export declare const TEST_IMAGE_NAMES: readonly string[];
/** `name:tag` (e.g. `busybox:1.0`, `user:uid`) → the built image or index. Built once. */
export declare function buildTestImages(): Promise<Map<string, Built>>;
export declare function describeTestImages(registry: string): Promise<Record<string, TestImageInfo>>;
export declare function pushTestImages(registry: string): Promise<Record<string, TestImageInfo>>;
