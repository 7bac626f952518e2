import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type * as cri from '../api/cri.js';
import type * as wire from '../api/wire.js';
import type { Config } from '../config/config.js';
import { InvalidArgumentError, NotFoundError } from '../errors.js';
import { newId } from '../util/ids.js';
import { KeyedMutex } from '../util/keyed-mutex.js';
import { secondsToDelay } from '../util/timer.js';
import { loadArchive } from './archive/load.js';
import { imageFsUsage, toCriImage, verboseInfoOf } from './cri-view.js';
import type { PullProgressSnapshot } from './progress.js';
import { pullContent } from './pull.js';
import { PROGRESS_TIMEOUT_SETTING } from './pull-watchdog.js';
import { RunningPulls, type PullWatch } from './pulls.js';
import { digestReference, formatReference, isImageId, parseReference, tagReference, type ImageReference } from './reference.js';
import { credentialsFrom } from './registry/auth.js';
import { RegistrySession } from './registry/client.js';
import { RegistryHosts } from './registry/endpoints.js';
import { NO_PROXY_ENV, type ProxyEnv } from './registry/proxy-env.js';
import { RegistryTransport } from './registry/transport.js';
import { BlobStore } from './store/blobs.js';
import { IMAGE_RECORD_VERSION, ImageRecords, type ImageRecord } from './store/images.js';
import { StoreLayout } from './store/layout.js';
import { LayerStore } from './store/layers.js';
import { quote } from '../validation/fields.js';

/** What a record is made of, pulled or loaded. */
type RecordContent = Pick<ImageRecord, 'config' | 'layers' | 'size' | 'manifestDigests'> & { configDigest: string };

/** An image an archive held, as `tscri load` reports it. */
export interface LoadedSummary {
  id: string;
  repoTags: string[];
}

/** An id prefix must be this long before it is tried as an id rather than as a name. */
const MIN_ID_PREFIX = 12;

/**
 * ImageService: pulls through mirrors into the store, finds images by id, tag or digest,
 * removes them (and whatever content no image or container uses any more).
 */
export class ImageService {
  readonly layout: StoreLayout;
  private readonly records: ImageRecords;
  private readonly blobs: BlobStore;
  readonly layers: LayerStore;
  private readonly mutex = new KeyedMutex();
  private readonly pulls = new RunningPulls(() => secondsToDelay(this.config.registry.pullProgressTimeoutSeconds));
  /** What each load in progress has touched, so GC spares it. */
  private readonly loads = new Set<Set<string>>();
  /** Layers something still stands on (a container's rootfs, the pause rootfs), by owner. */
  private readonly retained = new Map<string, string[]>();
  /** hosts.toml, mirrors and the auth file: where each pull fetches from, with what. */
  private readonly registryHosts = new RegistryHosts(() => this.config.registry);
  private readonly transport: RegistryTransport;

  /** `proxy` is the environment's proxy settings, read once at daemon start. */
  constructor(
    private config: Config,
    private readonly log: Logger,
    proxy: ProxyEnv = NO_PROXY_ENV,
  ) {
    this.transport = new RegistryTransport(proxy);
    this.layout = new StoreLayout(config.root);
    this.records = new ImageRecords(this.layout, log);
    this.blobs = new BlobStore(this.layout);
    this.layers = new LayerStore(this.layout, log);
  }

  /** New registry settings (a SIGHUP reload): pulls that start from now on use them. */
  useRegistrySettings(registry: Config['registry']): void {
    this.config = { ...this.config, registry };
  }

  /** Load the records; whatever a crash left in tmp/ is half-made and goes. */
  async open(): Promise<void> {
    await fs.rm(this.layout.tmpDir, { recursive: true, force: true });
    await fs.mkdir(this.layout.tmpDir, { recursive: true, mode: 0o700 });
    await this.records.load();
    this.log.info({ images: this.records.all().length }, 'images loaded');
  }

  /**
   * Keep an image's layers on disk for `owner` (a container, the shared pause rootfs) even if
   * the image itself is removed. Owners re-register after a daemon restart.
   */
  retainLayers(owner: string, diffIds: string[]): void {
    this.retained.set(owner, [...diffIds]);
  }

  /** Mark an image pinned, so kubelet's image garbage collection leaves it alone. */
  async pin(id: string): Promise<void> {
    await this.mutex.run('records', async () => {
      const record = this.records.get(id);
      if (record && !record.pinned) await this.records.save({ ...record, pinned: true });
    });
  }

  /** Drop `owner`'s hold; its layers go at the next collection if nothing else keeps them. */
  async releaseLayers(owner: string, log: Logger): Promise<void> {
    if (this.retained.delete(owner)) await this.collectGarbage(log);
  }

  /**
   * PullImage: returns the image id (config digest). Concurrent pulls of one reference share
   * the work and its failure (see RunningPulls).
   */
  async pull(image: cri.ImageSpec | null, auth: cri.AuthConfig | null, log: Logger, signal?: AbortSignal): Promise<string> {
    if (!image?.image) throw new InvalidArgumentError('image reference is required');
    const ref = parseReference(image.image);
    const key = formatReference(ref);
    const pulled = await this.pulls.join(key, log, (watch) => this.pullNew(ref, auth, watch, log.child({ image: key })), signal);
    return pulled.id;
  }

  private async pullNew(ref: ImageReference, auth: cri.AuthConfig | null, watch: PullWatch, log: Logger): Promise<ImageRecord> {
    const { progress, touched, watchdog } = watch;
    const endpoints = await this.registryHosts.endpointsFor(ref.domain, log).catch((err: unknown) => {
      watchdog.stop();
      throw err;
    });
    const session = new RegistrySession(ref, endpoints, credentialsFrom(auth), log, {
      transport: this.transport,
      signal: watchdog.signal,
      bodyIdleMs: watchdog.ms,
      bodyIdleSetting: PROGRESS_TIMEOUT_SETTING,
      onActivity: () => watchdog.progress(),
    });
    watchdog.describeWith(() => session.waitingOn());
    try {
      const pulled = await pullContent({ ...this.storeFor(touched, log), ref, session, progress, signal: watchdog.signal });
      watchdog.stop(); // what is left is local work
      const record = await this.mutex.run('records', () => this.recordPull(ref, pulled));
      const done = progress.finish();
      log.info({ id: record.id, from: session.endpoint?.url, ...done }, 'image pulled');
      return record;
    } catch (err) {
      watchdog.stop();
      // A pull given up fails with why it was given up, not with what the abort broke on the way.
      const cause: unknown = watchdog.signal.aborted ? watchdog.signal.reason : err;
      progress.finish();
      log.warn({ err: cause }, 'pull failed; removing what it fetched');
      touched.clear();
      await this.collectGarbageAfterFailure(log);
      throw cause;
    }
  }

  /** Write the image's record, and move its tag away from the image that had it. */
  private async recordPull(ref: ImageReference, pulled: Awaited<ReturnType<typeof pullContent>>): Promise<ImageRecord> {
    const tag = tagReference(ref);
    return this.recordImage(pulled, tag ? [tag] : [], [digestReference(ref, pulled.topDigest)], false);
  }

  /**
   * Write an image's record with these names added to those it has, moving each tag away from
   * the image that had it.
   */
  private async recordImage(content: RecordContent, tags: string[], repoDigests: string[], pin: boolean): Promise<ImageRecord> {
    const existing = this.records.get(content.configDigest);
    for (const tag of tags) {
      const previous = this.records.byTag(tag);
      if (previous && previous.id !== content.configDigest) {
        await this.records.save({ ...previous, repoTags: previous.repoTags.filter((t) => t !== tag) });
      }
    }
    const record: ImageRecord = {
      version: IMAGE_RECORD_VERSION,
      id: content.configDigest,
      repoTags: union(existing?.repoTags, tags),
      repoDigests: union(existing?.repoDigests, repoDigests),
      size: content.size,
      manifestDigests: union(existing?.manifestDigests, content.manifestDigests),
      config: content.config,
      layers: content.layers,
      pinned: (existing?.pinned ?? false) || pin,
      pulledAt: Date.now(),
    };
    await this.records.save(record);
    return record;
  }

  /**
   * Load the images of an archive (docker save, OCI layout; see archive/load.ts) and record
   * them under the names the archive gives. `pin` keeps them from kubelet's image GC (images
   * of the import directory, which a node without a registry cannot get back). Nothing of a
   * failed load stays: its scratch files go, and so does every layer no image uses.
   */
  async load(archive: Readable, options: { log: Logger; pin?: boolean; signal?: AbortSignal }): Promise<LoadedSummary[]> {
    const { log } = options;
    const touched = new Set<string>();
    this.loads.add(touched);
    const scratch = path.join(this.layout.tmpDir, `load-${newId().slice(0, 16)}`);
    try {
      await fs.mkdir(scratch, { recursive: true, mode: 0o700 });
      const context = { ...this.storeFor(touched, log), scratch, ...(options.signal ? { signal: options.signal } : {}) };
      const loaded = await loadArchive(context, archive);
      const summaries: LoadedSummary[] = [];
      for (const image of loaded) {
        const repoDigests = image.topDigest ? image.tags.map((tag) => digestReference(parseReference(tag), image.topDigest!)) : [];
        const record = await this.mutex.run('records', () => this.recordImage(image, image.tags, repoDigests, options.pin ?? false));
        log.info({ id: record.id, tags: image.tags }, 'image loaded');
        summaries.push({ id: record.id, repoTags: image.tags });
      }
      return summaries;
    } catch (err) {
      log.warn({ err }, 'load failed; removing what it stored');
      this.loads.delete(touched);
      await this.collectGarbageAfterFailure(log);
      throw err;
    } finally {
      this.loads.delete(touched);
      await fs.rm(scratch, { recursive: true, force: true });
    }
  }

  /** What a pull or a load writes content with; each digest it writes is added to `touched`. */
  private storeFor(touched: Set<string>, log: Logger) {
    return {
      blobs: this.blobs,
      layers: this.layers,
      touch: (digest: string) => void touched.add(digest),
      knownLayerStats: (diffId: string) => this.layerStats(diffId),
      log,
    };
  }

  /** After a failed pull or load: what it stored goes, unless an image or another operation uses it. */
  private async collectGarbageAfterFailure(log: Logger): Promise<void> {
    await this.collectGarbage(log).catch((err: unknown) => log.error({ err }, 'garbage collection failed'));
  }

  private layerStats(diffId: string): { bytes: number; inodes: number } | undefined {
    for (const record of this.records.all()) {
      const layer = record.layers.find((l) => l.diffId === diffId);
      if (layer) return { bytes: layer.bytes, inodes: layer.inodes };
    }
    return undefined;
  }

  /**
   * The image a client means by `text`: an id (full, or a prefix of at least 12 hex digits),
   * `name@digest`, or `name[:tag]`.
   */
  resolve(text: string): ImageRecord | undefined {
    const trimmed = text.trim();
    if (isImageId(trimmed)) return this.records.get(trimmed.startsWith('sha256:') ? trimmed : `sha256:${trimmed}`);
    if (/^(sha256:)?[a-f0-9]+$/.test(trimmed) && trimmed.replace(/^sha256:/, '').length >= MIN_ID_PREFIX) {
      const matches = this.records.byIdPrefix(trimmed);
      if (matches.length === 1) return matches[0];
    }
    let ref: ImageReference;
    try {
      ref = parseReference(trimmed);
    } catch (err) {
      if (trimmed.startsWith('sha256:')) return undefined;
      throw err;
    }
    if (ref.digest) return this.records.byRepoDigest(digestReference(ref, ref.digest));
    return this.records.byTag(tagReference(ref)!);
  }

  /** The image for `text`, or NotFound. */
  get(text: string): ImageRecord {
    const record = this.resolve(text);
    if (!record) throw new NotFoundError(`image ${quote(text)} not found`);
    return record;
  }

  list(filter: cri.ImageFilter | null): wire.Image[] {
    const wanted = filter?.image?.image;
    const records = wanted ? [this.resolve(wanted)].filter((r): r is ImageRecord => r !== undefined) : this.records.all();
    return records.map(toCriImage);
  }

  /** ImageStatus: a missing image is an empty answer, not an error; verbose adds the config and any pull in progress. */
  status(image: cri.ImageSpec | null, verbose: boolean): wire.ImageStatusResponse {
    if (!image?.image) throw new InvalidArgumentError('image reference is required');
    const record = this.resolve(image.image);
    const response: wire.ImageStatusResponse = { image: record ? toCriImage(record) : null };
    if (verbose) {
      const info: Record<string, string> = {};
      if (record) {
        info.info = verboseInfoOf(record);
      }
      const progress = this.progressOf(image.image);
      if (progress) info.pullProgress = JSON.stringify(progress);
      response.info = info;
    }
    return response;
  }

  /** A pull of `text` in progress, if any. */
  progressOf(text: string): PullProgressSnapshot | undefined {
    let key: string;
    try {
      key = formatReference(parseReference(text));
    } catch {
      return undefined;
    }
    return this.pulls.progressOf(key);
  }

  /**
   * RemoveImage. By id or digest: the image goes with all its names. By tag: only that tag
   * goes, and the image with it once no tag is left. Unknown images are not an error.
   */
  async remove(image: cri.ImageSpec | null, log: Logger): Promise<void> {
    if (!image?.image) throw new InvalidArgumentError('image reference is required');
    const text = image.image;
    await this.mutex.run('records', async () => {
      const record = this.resolve(text);
      if (!record) {
        log.info({ image: quote(text) }, 'image already removed');
        return;
      }
      const byTag = !isImageId(text) && !text.includes('@') && !/^(sha256:)?[a-f0-9]{12,}$/.test(text);
      if (byTag) {
        const tag = tagReference(parseReference(text))!;
        const repoTags = record.repoTags.filter((t) => t !== tag);
        if (repoTags.length > 0) {
          await this.records.save({ ...record, repoTags });
          log.info({ image: record.id, tag }, 'tag removed; image kept for its other tags');
          return;
        }
      }
      await this.records.delete(record.id);
      log.info({ image: record.id }, 'image removed');
    });
    await this.collectGarbage(log);
  }

  /**
   * Delete layers and blobs no image record references, no container uses and no running
   * pull has touched. Runs under the records lock so it sees a settled set of records.
   */
  async collectGarbage(log: Logger): Promise<void> {
    await this.mutex.run('records', async () => {
      const keep = new Set<string>([...this.retained.values()].flat());
      for (const d of this.pulls.touched()) keep.add(d);
      for (const load of this.loads) for (const d of load) keep.add(d);
      for (const record of this.records.all()) {
        keep.add(record.id);
        for (const d of record.manifestDigests) keep.add(d);
        for (const layer of record.layers) keep.add(layer.diffId);
      }
      const [layerDirs, blobFiles] = await Promise.all([readdirOrEmpty(this.layout.layersDir), readdirOrEmpty(this.layout.blobsDir)]);
      const layers = layerDirs.map((hex) => `sha256:${hex}`).filter((d) => !keep.has(d));
      const blobs = blobFiles.map((hex) => `sha256:${hex}`).filter((d) => !keep.has(d));
      for (const diffId of layers) await this.layers.remove(diffId);
      for (const digest of blobs) await this.blobs.remove(digest);
      if (layers.length + blobs.length > 0) log.info({ layers: layers.length, blobs: blobs.length }, 'unused image content removed');
    });
  }

  /** ImageFsInfo: what the image store holds, unpacked layers counted once. */
  async fsInfo(): Promise<wire.ImageFsInfoResponse> {
    const usage = imageFsUsage(this.records.all(), await this.blobs.usage(), this.layout.base);
    return { image_filesystems: [usage], container_filesystems: [] };
  }

  /** The unpacked layer directories of an image, lowest first. */
  layerDirs(record: ImageRecord): string[] {
    return record.layers.map((l) => this.layout.layer(l.diffId));
  }
}

function union(a: string[] | undefined, b: string[]): string[] {
  return [...new Set([...(a ?? []), ...b])];
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return (await fs.readdir(dir)).filter((name) => /^[a-f0-9]{64}$/.test(name));
  } catch {
    return [];
  }
}

