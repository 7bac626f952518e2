#!/usr/bin/env node
// The images tscri's end-to-end tests pull, built only from Debian binaries (busybox-static,
// catatonit, perl-base's perl with its libraries) and pushed to a registry as tscri-test/<name>:<tag>. The e2e tests push them to
// a registry of their own (test/e2e/global-setup.ts); by hand:
//
//   node hack/test-images.mjs --registry HOST:PORT
//
// Building is deterministic (hack/lib/images.mjs), so digests are the same on every run and
// pushing again skips every tag that already points at the same manifest.
import { execFileSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { image, index, layer, push } from './lib/images.mjs';

export const REPOSITORY_PREFIX = 'tscri-test';
const BUSYBOX = '/usr/bin/busybox';
const CATATONIT = '/usr/bin/catatonit';
const PERL = '/usr/bin/perl';
const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const PAUSE_CONFIG = { Entrypoint: ['/pause', '-P'], User: '65535:65535' };
const BUSYBOX_CONFIG = { Env: [PATH_ENV], Cmd: ['sh'] };

// Users and groups the container tests resolve: by name, with a supplementary group.
const PASSWD = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
user1000:x:1000:1000:user1000:/home/user1000:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
`;
const GROUP = `root:x:0:
daemon:x:1:
www-data:x:33:
group1000:x:1000:
extra:x:50000:user1000
nogroup:x:65534:
`;

const dirs = (...paths) => paths.map((path) => ({ path, type: 'dir' }));

/** A busybox userland like the upstream image: each applet a hard link to /bin/busybox. */
function busyboxEntries() {
  const applets = execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' })
    .split('\n')
    .filter((name) => name && name !== 'busybox');
  return [
    ...dirs('bin', 'dev', 'etc', 'home', 'proc', 'sys', 'usr', 'usr/bin', 'usr/sbin', 'var', 'var/www'),
    { path: 'home/user1000', type: 'dir', uid: 1000, gid: 1000 },
    { path: 'root', type: 'dir', mode: 0o700 },
    { path: 'tmp', type: 'dir', mode: 0o1777 },
    { path: 'bin/busybox', type: 'file', source: BUSYBOX, mode: 0o755 },
    ...applets.map((name) => ({ path: `bin/${name}`, type: 'hardlink', linkname: 'bin/busybox', mode: 0o755 })),
    { path: 'etc/passwd', type: 'file', content: PASSWD },
    { path: 'etc/group', type: 'file', content: GROUP },
  ];
}

const pauseEntry = { path: 'pause', type: 'file', source: CATATONIT, mode: 0o755 };

const platformLayer = (platform) => layer([...dirs('etc'), { path: 'etc/platform', type: 'file', content: `${platform}\n` }]);

/** linux/amd64 → busybox plus /etc/platform; arm64 and arm/v7 → only /etc/platform. */
async function multiarch(busyboxLayer, format) {
  const child = async (platform, layers) =>
    image({ layers: [...layers, await platformLayer(platform)], config: BUSYBOX_CONFIG, platform: parsePlatform(platform), format });
  const amd64 = await child('linux/amd64', [busyboxLayer]);
  const arm64 = await child('linux/arm64', []);
  const armv7 = await child('linux/arm/v7', []);
  // amd64 is deliberately not first: a puller must select it, not take the first entry.
  return index([arm64, amd64, armv7], { format });
}

function parsePlatform(text) {
  const [os, architecture, variant] = text.split('/');
  return variant ? { os, architecture, variant } : { os, architecture };
}

/** A pause image whose rootfs has files deleted by whiteouts, to look at from a running pod. */
async function whiteout() {
  const lower = await layer([
    pauseEntry,
    ...dirs('etc', 'dir', 'gone', 'gone/deep'),
    { path: 'etc/hidden', content: 'hidden\n' },
    { path: 'etc/kept', content: 'kept\n' },
    { path: 'dir/a', content: 'a\n' },
    { path: 'dir/b', content: 'b\n' },
    { path: 'gone/deep/file', content: 'deep\n' },
  ]);
  const upper = await layer([
    ...dirs('etc', 'dir'),
    { path: 'etc/hidden', type: 'whiteout' },
    { path: 'dir', type: 'opaque' },
    { path: 'dir/c', content: 'c\n' },
    { path: 'gone', type: 'whiteout' },
  ]);
  return image({ layers: [lower, upper], config: PAUSE_CONFIG });
}

/** `binary` and the shared libraries (and loader) ldd says it needs, at the paths ldd names. */
function withLibraries(binary) {
  const needed = execFileSync('ldd', [binary], { encoding: 'utf8' })
    .split('\n')
    .map((line) => /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line)?.[1])
    .filter(Boolean);
  return [binary, ...needed].map((file) => ({ path: file.slice(1), type: 'file', source: realpathSync(file), mode: 0o755 }));
}

/** `entries` preceded by one directory entry for each of their parents. */
function withParents(entries) {
  const parents = new Set();
  for (const { path } of entries) {
    const parts = dirname(path).split('/').filter((part) => part && part !== '.');
    parts.forEach((_, i) => parents.add(parts.slice(0, i + 1).join('/')));
  }
  return [...dirs(...parents), ...entries];
}

/**
 * System call numbers for the probe, by Node's name of the host architecture (the probe's perl
 * is the host's). From the kernel's syscall tables: x86-64's own, and the generic one arm64 uses.
 */
const SYSCALL_NUMBERS = {
  x64: { keyctl: 250, add_key: 248, kcmp: 312, ptrace: 101, personality: 135, socket: 41, io_uring_setup: 425, clone3: 435, unshare: 272 },
  arm64: { keyctl: 219, add_key: 217, kcmp: 272, ptrace: 117, personality: 92, socket: 198, io_uring_setup: 425, clone3: 435, unshare: 97 },
};

/**
 * `syscall-probe NAME [PID]`: makes one system call the seccomp tests care about with fixed
 * arguments and prints `ok <result>` (exit 0) or `errno <n>` (exit 1). Perl's syscall() needs
 * no compiler and no module, so one Debian binary covers calls no busybox applet makes.
 */
function syscallProbe() {
  const numbers = SYSCALL_NUMBERS[process.arch] ?? {};
  const table = Object.entries(numbers).map(([name, nr]) => `  ${name} => ${nr},`).join('\n');
  return `#!/usr/bin/perl
my %nr = (
${table}
);
my ($name, $pid) = @ARGV;
# syscall() passes a string as a pointer: numbers must be numbers, and strings writable copies.
my $self = $$ + 0;
my ($type, $description, $payload, $params) = ('user', 'tscri', 'v', "\\0" x 120);
my %call = (
  keyctl => sub { syscall($nr{keyctl}, 0, -3, 1) },              # KEYCTL_GET_KEYRING_ID, session, create
  add_key => sub { syscall($nr{add_key}, $type, $description, $payload, 1, -3) },
  kcmp => sub { syscall($nr{kcmp}, $self, $self, 0, 0, 0) },      # KCMP_FILE: fd 0 against itself
  ptrace => sub { syscall($nr{ptrace}, 16, $pid + 0, 0, 0) },     # PTRACE_ATTACH
  personality => sub { syscall($nr{personality}, 0x0040000) },    # ADDR_NO_RANDOMIZE
  vsock => sub { syscall($nr{socket}, 40, 1, 0) },                 # AF_VSOCK, SOCK_STREAM
  inet => sub { syscall($nr{socket}, 2, 1, 0) },                   # AF_INET, SOCK_STREAM
  io_uring => sub { syscall($nr{io_uring_setup}, 1, $params) },
  clone3 => sub { syscall($nr{clone3}, 0, 0) },                    # no arguments: EINVAL if it runs at all
  userns => sub { syscall($nr{unshare}, 0x10000000) },             # CLONE_NEWUSER
);
die "syscall-probe: no system call numbers for this architecture\\n" unless %nr;
die "usage: syscall-probe " . join('|', sort keys %call) . " [pid]\\n" unless $call{$name};
my $result = $call{$name}->();
if ($result == -1) { print "errno ", $! + 0, "\\n"; exit 1; }
print "ok $result\\n";
`;
}

/** busybox plus perl and a probe that makes single system calls (the seccomp tests). */
async function syscalls(busyboxLayer) {
  const probe = await layer(
    withParents([...withLibraries(PERL), { path: 'usr/local/bin/syscall-probe', type: 'file', content: syscallProbe(), mode: 0o755 }]),
  );
  return image({ layers: [busyboxLayer, probe], config: BUSYBOX_CONFIG });
}

/**
 * The catalogue: `name:tag` → how to build it, pushed as tscri-test/<name>:<tag>. The names
 * are known without building anything, so tests can be checked against them before any runs
 * (test/e2e/catalogue-guard.ts). Each builder gets the shared parts; reuse `busyboxLayer` where
 * a shell is enough, so the registry stores it once and pulls share it.
 */
const CATALOGUE = [
  // A shell and coreutils, with users and groups (OCI format).
  ['busybox:1.0', ({ busybox }) => busybox],
  ['busybox:latest', ({ busybox }) => busybox],
  // The same layer and config (so the same image id) behind a Docker schema 2 manifest.
  ['busybox-docker:1.0', ({ busyboxLayer }) => image({ layers: [busyboxLayer], config: BUSYBOX_CONFIG, format: 'docker' })],
  // A sandbox (pause) image: catatonit.
  ['pause:1.0', async () => image({ layers: [await layer([pauseEntry])], config: PAUSE_CONFIG })],
  ['whiteout:1.0', () => whiteout()],
  // Platform selection from an OCI index and from a Docker manifest list.
  ['multiarch:1.0', ({ busyboxLayer }) => multiarch(busyboxLayer, 'oci')],
  ['multiarch-docker:1.0', ({ busyboxLayer }) => multiarch(busyboxLayer, 'docker')],
  // The image config's User in its four forms.
  ['user:uid', ({ withConfig }) => withConfig({ User: '1000' })],
  ['user:uid-gid', ({ withConfig }) => withConfig({ User: '1000:50000' })],
  ['user:name', ({ withConfig }) => withConfig({ User: 'www-data' })],
  ['user:name-group', ({ withConfig }) => withConfig({ User: 'www-data:extra' })],
  // A stop signal other than SIGTERM: StopContainer must send it first.
  ['stopsignal:1.0', ({ withConfig }) => withConfig({ StopSignal: 'SIGUSR1' })],
  // busybox's files and /etc/compression in a zstd-compressed layer (tar+zstd).
  ['busybox-zstd:1.0', async () => image({ layers: [await layer([...busyboxEntries(), { path: 'etc/compression', content: 'zstd\n' }], { compression: 'zstd' })], config: BUSYBOX_CONFIG })],
  // Single system calls for the seccomp tests, through the host's perl.
  ['syscalls:1.0', ({ busyboxLayer }) => syscalls(busyboxLayer)],
];

/** Every `name:tag` the catalogue holds, in its order. */
export const TEST_IMAGE_NAMES = Object.freeze(CATALOGUE.map(([nameTag]) => nameTag));

/** Built once per process (building busybox's layer is the only slow part, ~0.1 s). */
let catalogue;
export function buildTestImages() {
  catalogue ??= buildCatalogue();
  return catalogue;
}

async function buildCatalogue() {
  const busyboxLayer = await layer(busyboxEntries());
  const withConfig = (extra) => image({ layers: [busyboxLayer], config: { ...BUSYBOX_CONFIG, ...extra } });
  const shared = { busyboxLayer, busybox: withConfig({}), withConfig };
  const built = new Map();
  for (const [nameTag, build] of CATALOGUE) built.set(nameTag, await build(shared));
  return built;
}

/** What a test needs to know about one pushed image. */
function describeOne(registry, nameTag, item) {
  const [name, tag] = nameTag.split(':');
  const repository = `${REPOSITORY_PREFIX}/${name}`;
  const info = { reference: `${registry}/${repository}:${tag}`, repository, tag, digest: item.manifest.digest, mediaType: item.manifest.mediaType };
  if (item.kind === 'image') return { ...info, configDigest: item.config.digest, layers: item.layers.map((l) => l.digest) };
  const manifests = item.images.map((img) => ({ platform: img.platform, digest: img.manifest.digest, configDigest: img.config.digest }));
  // An index's image id on this machine is its linux/amd64 child's config digest.
  const amd64 = manifests.find((m) => m.platform.architecture === 'amd64' && m.platform.os === 'linux');
  return { ...info, configDigest: amd64?.configDigest, manifests };
}

/** `name:tag` → reference, digests and (for an index) its children, without pushing. */
export async function describeTestImages(registry) {
  const described = {};
  for (const [nameTag, item] of await buildTestImages()) described[nameTag] = describeOne(registry, nameTag, item);
  return described;
}

/**
 * Build and push every test image to `registry` (host:port): describeTestImages' answer, each
 * with `pushed` false when its tag already pointed at the same manifest.
 */
export async function pushTestImages(registry) {
  const described = await describeTestImages(registry);
  for (const [nameTag, item] of await buildTestImages()) {
    const { repository, tag } = described[nameTag];
    described[nameTag].pushed = !(await push(registry, repository, tag, item)).skipped;
  }
  return described;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { registry: { type: 'string' } } });
  if (!values.registry) {
    console.error('usage: node hack/test-images.mjs --registry HOST:PORT');
    process.exit(2);
  }
  const started = performance.now();
  const images = await pushTestImages(values.registry);
  for (const { reference, digest, pushed } of Object.values(images)) console.log(`${reference}  ${digest}  ${pushed ? 'pushed' : 'unchanged'}`);
  console.log(`${Object.keys(images).length} tags in ${Math.round(performance.now() - started)} ms`);
}
