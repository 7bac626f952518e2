import { createReadStream, promises as fs } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as grpc from '@grpc/grpc-js';
import { Command } from 'commander';
import { imageLoaderDefinition, IMAGE_LOADER_SERVICE, LOAD_CHUNK_BYTES, type LoadReply } from '../../api/image-loader.js';
import { grpcAddress } from '../client.js';
import { endpointsOf, parseDuration } from '../context.js';

/** A load of a few GiB takes minutes: without -t, a load may take this long. */
const DEFAULT_LOAD_TIMEOUT = '1h';

/**
 * `tscri load FILE` (or `-i FILE`, or standard input): streams the archive to the daemon's
 * ImageLoader on the image endpoint; the daemon reads, verifies and stores it. Nothing is
 * unpacked here, so the CLI needs no access to the daemon's directories.
 */
export function loadCommand(): Command {
  return new Command('load')
    .description('Load images from a docker save or OCI archive (tar, tar.gz, tar.zst) into the daemon')
    .argument('[file]', 'archive to load (default: standard input)')
    .option('-i, --input <file>', 'archive to load')
    .action(async (file: string | undefined, opts: { input?: string }, command: Command) => {
      const path = opts.input ?? file;
      if (path && path !== '-') await fs.access(path); // "no such file" from here, not a cancelled call
      const source = path && path !== '-' ? createReadStream(path, { highWaterMark: LOAD_CHUNK_BYTES }) : process.stdin;
      const reply = await send(command, source);
      if (reply.images.length === 0) process.stdout.write('No image loaded\n');
      for (const image of reply.images) {
        if (image.repoTags.length === 0) process.stdout.write(`Loaded image ID: ${image.id}\n`);
        for (const tag of image.repoTags) process.stdout.write(`Loaded image: ${tag} (${image.id})\n`);
      }
    });
}

async function send(command: Command, source: Readable): Promise<LoadReply> {
  const { imageEndpoint } = endpointsOf(command);
  const explicit = command.parent?.getOptionValueSource('timeout') === 'cli';
  const timeout = explicit ? command.optsWithGlobals<{ timeout: string }>().timeout : DEFAULT_LOAD_TIMEOUT;
  const Client = grpc.makeGenericClientConstructor(imageLoaderDefinition, IMAGE_LOADER_SERVICE);
  const client = new Client(grpcAddress(imageEndpoint), grpc.credentials.createInsecure());
  try {
    const load = (client as unknown as { Load: LoadMethod }).Load.bind(client);
    let call!: grpc.ClientWritableStream<Buffer>;
    const reply = new Promise<LoadReply>((resolve, reject) => {
      call = load({ deadline: Date.now() + parseDuration(timeout) }, (err, res) => (err ? reject(err) : resolve(res!)));
    });
    // A refusal can come before the whole archive is sent: the reply says why, not the write.
    const sent = pipeline(source, call as unknown as NodeJS.WritableStream).catch(() => undefined);
    const answer = await reply;
    await sent;
    return answer;
  } finally {
    client.close();
  }
}

type LoadMethod = (options: grpc.CallOptions, callback: (err: grpc.ServiceError | null, reply?: LoadReply) => void) => grpc.ClientWritableStream<Buffer>;
