import { Command } from 'commander';
import type * as cri from '../../api/cri.js';
import { InvalidArgumentError } from '../../errors.js';
import type { PullProgressSnapshot } from '../../image/progress.js';
import { call } from '../client.js';
import { clientContext, type ClientContext } from '../context.js';
import { eachInTurn, humanSize, inspectEach, inspectView, printJson, printTable } from '../output.js';
import { finishedProgressLine, progressLine } from '../progress.js';
import { messageToJson } from '../proto-json.js';

const spec = (image: string) => ({ image });

export function imageCommands(): Command[] {
  const pull = new Command('pull')
    .description('Pull an image, showing progress')
    .argument('<image>')
    .option('--creds <user:password>', 'registry credentials')
    .option('--auth <base64>', 'base64 of user:password')
    .action(async (image: string, opts: { creds?: string; auth?: string }, command: Command) => {
      const ctx = clientContext(command);
      const auth = authOf(opts);
      const bar = process.stderr.isTTY ? startProgressBar(ctx, image) : undefined;
      try {
        const { image_ref } = await call(ctx.clients.image, 'PullImage', { image: spec(image), ...(auth ? { auth } : {}) }, ctx.timeoutMs);
        bar?.stop(true);
        process.stdout.write(`Image is up to date for ${image_ref}\n`);
      } finally {
        bar?.stop(false);
      }
    });

  const images = new Command('images')
    .alias('image')
    .description('List images')
    .argument('[repository]')
    .option('-q, --quiet', 'only print image ids')
    .option('--digests', 'show digests')
    .option('--no-trunc', 'show full ids')
    .option('-o, --output <format>', 'json or table', 'table')
    .action(async (repository: string | undefined, opts: { quiet?: boolean; digests?: boolean; trunc: boolean; output: string }, command: Command) => {
      const ctx = clientContext(command);
      const filter = repository ? { image: spec(repository) } : {};
      const { images: list } = await call(ctx.clients.image, 'ListImages', { filter }, ctx.timeoutMs);
      if (opts.quiet) {
        for (const image of list) process.stdout.write(`${image.id}\n`);
        return;
      }
      if (opts.output === 'json') {
        printJson(messageToJson('ListImagesResponse', { images: list }));
        return;
      }
      const rows = list.flatMap((image) => imageRows(image as cri.Image, opts.trunc, opts.digests ?? false));
      const header = ['IMAGE', 'TAG', ...(opts.digests ? ['DIGEST'] : []), 'IMAGE ID', 'SIZE'];
      printTable(header, rows);
    });

  const inspecti = new Command('inspecti')
    .description('Show the status of one or more images')
    .argument('<image...>')
    .action(async (names: string[], _opts: unknown, command: Command) => {
      const ctx = clientContext(command);
      await inspectEach(names, async (name) => {
        const res = await call(ctx.clients.image, 'ImageStatus', { image: spec(name), verbose: true }, ctx.timeoutMs);
        if (!res.image) throw new InvalidArgumentError(`no such image "${name}" present`);
        return inspectView(messageToJson('Image', res.image) as Record<string, unknown>, res.info);
      });
    });

  const rmi = new Command('rmi')
    .description('Remove one or more images')
    .argument('[image...]')
    .option('-a, --all', 'remove all images')
    .action(async (names: string[], opts: { all?: boolean }, command: Command) => {
      const ctx = clientContext(command);
      const targets = opts.all ? (await call(ctx.clients.image, 'ListImages', {}, ctx.timeoutMs)).images.map((i) => i.id) : names;
      if (targets.length === 0) throw new InvalidArgumentError('no image given (or use --all)');
      const remove = async (name: string): Promise<void> => {
        const { image } = await call(ctx.clients.image, 'ImageStatus', { image: spec(name), verbose: false }, ctx.timeoutMs);
        if (!image) throw new InvalidArgumentError(`no such image "${name}"`);
        await call(ctx.clients.image, 'RemoveImage', { image: spec(name) }, ctx.timeoutMs);
      };
      await eachInTurn(targets, remove, (name) => `Deleted: ${name}`);
    });

  const imagefsinfo = new Command('imagefsinfo')
    .description('Show the image filesystem usage')
    .action(async (_opts: unknown, command: Command) => {
      const ctx = clientContext(command);
      const res = await call(ctx.clients.image, 'ImageFsInfo', {}, ctx.timeoutMs);
      for (const usage of res.image_filesystems) printJson({ status: messageToJson('FilesystemUsage', usage) });
    });

  return [pull, images, inspecti, rmi, imagefsinfo];
}

function authOf(opts: { creds?: string; auth?: string }): Record<string, string> | undefined {
  if (opts.auth) return { auth: opts.auth };
  if (!opts.creds) return undefined;
  const colon = opts.creds.indexOf(':');
  if (colon < 0) throw new InvalidArgumentError('--creds must be user:password');
  return { username: opts.creds.slice(0, colon), password: opts.creds.slice(colon + 1) };
}

/** One table row per tag (or one untagged row), crictl style. */
function imageRows(image: cri.Image, trunc: boolean, digests: boolean): string[][] {
  const id = trunc ? image.id.replace(/^sha256:/, '').slice(0, 13) : image.id;
  const size = humanSize(Number(image.size));
  const digest = image.repo_digests[0]?.split('@')[1] ?? '<none>';
  const shortDigest = trunc ? digest.replace(/^sha256:/, '').slice(0, 13) : digest;
  const names = image.repo_tags.length > 0 ? image.repo_tags : image.repo_digests.map((d) => `${d.split('@')[0]}:<none>`);
  return (names.length > 0 ? names : ['<none>:<none>']).map((name) => {
    const colon = name.lastIndexOf(':');
    return [name.slice(0, colon), name.slice(colon + 1), ...(digests ? [shortDigest] : []), id, size];
  });
}

export { humanSize } from '../output.js';

/**
 * Poll the daemon for the pull's progress and draw a bar on stderr until stopped. The daemon
 * is polled, so the last snapshot seen may be short of the end: a pull that succeeded is
 * drawn complete, one that failed is left where it was.
 */
function startProgressBar(ctx: ClientContext, image: string): { stop(succeeded: boolean): void } {
  let stopped = false;
  let last: PullProgressSnapshot | undefined;
  const draw = (line: string): void => void process.stderr.write(`\r${line}\x1b[K`);
  const tick = async (): Promise<void> => {
    while (!stopped) {
      try {
        const res = await call(ctx.clients.image, 'ImageStatus', { image: spec(image), verbose: true }, 2000);
        const progress = res.info.pullProgress;
        if (progress && !stopped) {
          last = JSON.parse(progress) as PullProgressSnapshot;
          draw(progressLine(last));
        }
      } catch {
        // Progress is best effort; the pull's own result is what counts.
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  };
  void tick();
  return {
    stop(succeeded) {
      if (stopped) return;
      stopped = true;
      if (succeeded) draw(finishedProgressLine(last));
      if (succeeded || last) process.stderr.write('\n');
    },
  };
}
