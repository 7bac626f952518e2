#!/usr/bin/env node
// The images tscri's end-to-end tests pull, built only from Debian binaries (busybox-static,
// catatonit) and pushed to a local registry under tscri-test/<name>:<tag>.
//
//   node hack/test-images.mjs [--registry 127.0.0.1:5000]
//
// Building is deterministic, so digests are the same on every run and a push of an unchanged
// image only checks that its blobs are there.
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { image, index, layer, push } from './lib/oci.mjs';

export const REPOSITORY_PREFIX = 'tscri-test';
const BUSYBOX = '/usr/bin/busybox';
const CATATONIT = '/usr/bin/catatonit';
const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const PASSWD = [
  'root:x:0:0:root:/root:/bin/sh',
  'daemon:x:1:1:daemon:/usr/sbin:/bin/sh',
  'www-data:x:33:33:www-data:/var/www:/bin/sh',
  'user1000:x:1000:1000:user1000:/home/user1000:/bin/sh',
  'nobody:x:65534:65534:nobody:/nonexistent:/bin/sh',
  '',
].join('\n');

const GROUP = ['root:x:0:', 'daemon:x:1:', 'www-data:x:33:', 'group1000:x:1000:', 'extra:x:50000:user1000', 'nogroup:x:65534:', ''].join('\n');

/** A busybox userland: every applet a hard link to /bin/busybox, plus users and groups. */
function busyboxEntries(extra = []) {
  const applets = execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' }).split('\n').filter((a) => a && a !== 'busybox');
  return [
    ...['bin', 'dev', 'etc', 'home', 'home/user1000', 'proc', 'root', 'sys', 'usr', 'usr/bin', 'var', 'var/www'].map((path) => ({ path, type: 'dir' })),
    { path: 'tmp', type: 'dir', mode: 0o1777 },
    { path: 'bin/busybox', type: 'file', source: BUSYBOX, mode: 0o755 },
    ...applets.map((name) => ({ path: `bin/${name}`, type: 'link', linkname: 'bin/busybox' })),
    { path: 'etc/passwd', type: 'file', content: PASSWD },
    { path: 'etc/group', type: 'file', content: GROUP },
    ...extra,
  ];
}

const pauseEntries = () => [{ path: 'pause', type: 'file', source: CATATONIT, mode: 0o755 }];

/** The catalogue: name → tag → what to push. Built lazily, once. */
export async function buildTestImages() {
  const busyboxLayer = await layer(busyboxEntries());
  const busyboxConfig = { Env: [PATH_ENV], Cmd: ['sh'] };
  const busybox = image({ layers: [busyboxLayer], config: busyboxConfig });
  const busyboxDocker = image({ layers: [await layer(busyboxEntries(), 'docker')], config: busyboxConfig, format: 'docker' });

  const platformFile = (platform) => layer([{ path: 'etc', type: 'dir' }, { path: 'etc/platform', type: 'file', content: `${platform}\n` }]);
  const multiarchImages = async (format) => {
    const amd64 = image({ layers: [busyboxLayer, await platformFile('linux/amd64')], config: busyboxConfig, format });
    const arm64 = image({ layers: [await platformFile('linux/arm64')], config: busyboxConfig, platform: { os: 'linux', architecture: 'arm64' }, format });
    const armv7 = image({ layers: [await platformFile('linux/arm/v7')], config: busyboxConfig, platform: { os: 'linux', architecture: 'arm', variant: 'v7' }, format });
    // amd64 is deliberately not first: platform selection must pick it, not the first entry.
    return index([arm64, amd64, armv7], format);
  };

  const pause = image({ layers: [await layer(pauseEntries())], config: { Entrypoint: ['/pause', '-P'], User: '65535:65535' } });

  // A pause image whose rootfs has deleted files, for tests that look inside a running container.
  const whiteoutLower = await layer([
    ...pauseEntries(),
    { path: 'etc', type: 'dir' },
    { path: 'etc/hidden', type: 'file', content: 'hidden\n' },
    { path: 'etc/kept', type: 'file', content: 'kept\n' },
    { path: 'dir', type: 'dir' },
    { path: 'dir/a', type: 'file', content: 'a\n' },
    { path: 'dir/b', type: 'file', content: 'b\n' },
    { path: 'gone', type: 'dir' },
    { path: 'gone/deep', type: 'dir' },
    { path: 'gone/deep/file', type: 'file', content: 'deep\n' },
  ]);
  const whiteoutUpper = await layer([
    { path: 'etc', type: 'dir' },
    { path: 'etc/hidden', type: 'whiteout' },
    { path: 'dir', type: 'dir' },
    { path: 'dir', type: 'opaque' },
    { path: 'dir/c', type: 'file', content: 'c\n' },
    { path: 'gone', type: 'whiteout' },
  ]);
  const whiteout = image({ layers: [whiteoutLower, whiteoutUpper], config: { Entrypoint: ['/pause', '-P'], User: '65535:65535' } });

  const withUser = (User) => image({ layers: [busyboxLayer], config: { ...busyboxConfig, User } });
  const stopSignal = image({ layers: [busyboxLayer], config: { ...busyboxConfig, StopSignal: 'SIGUSR1' } });

  return {
    busybox: { '1.0': busybox, latest: busybox },
    'busybox-docker': { '1.0': busyboxDocker },
    multiarch: { '1.0': await multiarchImages('oci') },
    'multiarch-docker': { '1.0': await multiarchImages('docker') },
    pause: { '1.0': pause },
    whiteout: { '1.0': whiteout },
    user: { uid: withUser('1000'), 'uid-gid': withUser('1000:50000'), name: withUser('www-data'), 'name-group': withUser('www-data:extra') },
    stopsignal: { '1.0': stopSignal },
  };
}

/** Push the catalogue to `registry` (host:port); returns reference → pushed top digest. */
export async function pushTestImages(registry) {
  const catalogue = await buildTestImages();
  const pushed = {};
  for (const [name, tags] of Object.entries(catalogue)) {
    for (const [tag, item] of Object.entries(tags)) {
      const repository = `${REPOSITORY_PREFIX}/${name}`;
      pushed[`${registry}/${repository}:${tag}`] = await push(`http://${registry}`, repository, tag, item);
    }
  }
  return pushed;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { registry: { type: 'string', default: '127.0.0.1:5000' } } });
  const started = Date.now();
  const pushed = await pushTestImages(values.registry);
  for (const [reference, digest] of Object.entries(pushed)) console.log(`${reference}  ${digest}`);
  console.log(`${Object.keys(pushed).length} images in ${Date.now() - started} ms`);
}
