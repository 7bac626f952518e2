#!/usr/bin/env node
// The images critest v1.26 pulls, built from Debian binaries and pushed to a local registry
// under their upstream repository paths, so that a runtime mirroring registry.k8s.io, gcr.io
// and public.ecr.aws to that registry finds them:
//
//   node hack/conformance/images.mjs --registry HOST:PORT      (hack/critest.sh passes its own)
//
// The userland is Debian's dynamically linked busybox (package `busybox`, fetched with
// `apt-get download`, never installed: it conflicts with busybox-static) with the host's
// glibc. Unlike busybox-static it does not run applets as shell builtins, so a masked
// /bin/ls really is unusable from `sh -c ls`, as critest's MaskedPaths spec expects of the
// upstream busybox image. The web servers and the setuid helper are the C files next to this
// script, compiled statically.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { image, layer, push } from '../lib/images.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CACHE = process.env.TSCRI_HACK_CACHE ?? '/var/cache/tscri-hack';

/** The registries critest's images come from; a runtime mirrors each to the local registry. */
export const MIRRORED_REGISTRIES = ['registry.k8s.io', 'gcr.io', 'public.ecr.aws'];

const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const E2E = 'registry.k8s.io/e2e-test-images';
const CRI_TOOLS = 'gcr.io/k8s-staging-cri-tools';
const BENCHMARK = 'public.ecr.aws/docker/library';

// www-data:www-data for the username specs; user1000 is also in group 50000 for the
// "predefined group" spec, which expects the image's /etc/group to add it.
const PASSWD = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/sh
user1000:x:1000:1000:user1000:/home/user1000:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
`;
const GROUP = `root:x:0:
daemon:x:1:
www-data:x:33:
group1000:x:1000:
group50000:x:50000:user1000
nogroup:x:65534:
`;

// Neither applet is in Debian's busybox; critest runs `ipcs -m` and `pgrep sleep`.
const IPCS = `#!/bin/sh
# ipcs -m: the shared memory segments of this IPC namespace, from /proc/sysvipc/shm.
if [ "$#" -gt 1 ] || { [ "$#" -eq 1 ] && [ "$1" != -m ]; }; then
  echo "usage: ipcs [-m]" >&2
  exit 1
fi
echo "------ Shared Memory Segments --------"
echo "key        shmid      owner      perms      bytes      nattch"
awk 'NR > 1 { printf "0x%08x %-10s %-10s %-10o %-10s %s\\n", $1, $2, $8, $3, $4, $7 }' /proc/sysvipc/shm
`;
const PGREP = `#!/bin/sh
# pgrep PATTERN: pids of the processes whose name (comm) matches the extended regex PATTERN.
[ "$#" -eq 1 ] || { echo "usage: pgrep PATTERN" >&2; exit 2; }
status=1
for dir in /proc/[0-9]*; do
  pid=\${dir#/proc/}
  [ "$pid" = "$$" ] && continue
  name=$(cat "$dir/comm" 2>/dev/null) || continue
  if echo "$name" | grep -qE -- "$1"; then echo "$pid"; status=0; fi
done
exit $status
`;
// Apache's image logs its command line first; critest waits for it in the container log.
const HTTPD_FOREGROUND = `#!/bin/sh
echo "[core:notice] AH00094: Command line: 'httpd -D FOREGROUND'"
trap 'kill "$server"; exit 0' TERM INT
httpd -f -p 80 -h /var/www &
server=$!
wait "$server"
`;

const dirs = (...paths) => paths.map((p) => ({ path: p, type: 'dir' }));

/** Compile one of the C helpers next to this script into a static binary; returns its path. */
function compileStatic(source, workDir) {
  const output = path.join(workDir, path.basename(source, '.c'));
  execFileSync('gcc', ['-static', '-O2', '-Wall', '-o', output, path.join(HERE, source)], { stdio: 'inherit' });
  return output;
}

/**
 * Debian's `busybox` package unpacked under the cache (downloaded once): the path of its
 * binary.
 */
function dynamicBusybox() {
  const root = path.join(CACHE, 'busybox-deb');
  const binary = path.join(root, 'bin', 'busybox');
  if (existsSync(binary)) return binary;
  const download = mkdtempSync(path.join(tmpdir(), 'tscri-busybox-'));
  try {
    execFileSync('apt-get', ['download', '-q', '-o', 'APT::Sandbox::User=root', 'busybox'], { cwd: download, stdio: ['ignore', 'ignore', 'inherit'] });
    const deb = readdirSync(download).find((name) => name.endsWith('.deb'));
    if (!deb) throw new Error('apt-get download busybox produced no .deb');
    mkdirSync(CACHE, { recursive: true });
    const unpacked = `${root}.partial`;
    rmSync(unpacked, { recursive: true, force: true });
    execFileSync('dpkg-deb', ['-x', path.join(download, deb), unpacked]);
    rmSync(root, { recursive: true, force: true });
    renameSync(unpacked, root);
  } finally {
    rmSync(download, { recursive: true, force: true });
  }
  return binary;
}

/** The shared objects `binary` loads, the dynamic loader included, as absolute paths. */
function sharedLibraries(binary) {
  const output = execFileSync('ldd', [binary], { encoding: 'utf8' });
  const libraries = [];
  for (const line of output.split('\n')) {
    const match = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (match) libraries.push(match[1]);
  }
  if (libraries.length === 0) throw new Error(`ldd found no libraries for ${binary}:\n${output}`);
  return libraries;
}

/** busybox, its libraries, its applets as hard links, users, groups and the two scripts. */
function userlandEntries(busybox) {
  const applets = execFileSync(busybox, ['--list'], { encoding: 'utf8' })
    .split('\n')
    .filter((name) => name && name !== 'busybox');
  const libraries = sharedLibraries(busybox).map((library) => ({
    path: library, // the loader's /lib64/... path and libc's /lib/x86_64-linux-gnu/... path, as linked
    type: 'file',
    source: realpathSync(library),
    mode: 0o755,
  }));
  const libraryDirs = [...new Set(libraries.map((l) => path.dirname(l.path)))].flatMap((dir) => ancestors(dir));
  return [
    ...dirs('bin', 'dev', 'etc', 'home', 'proc', 'sys', 'usr', 'usr/bin', 'usr/sbin', 'usr/local', 'usr/local/bin', 'var', 'var/run', 'var/www'),
    ...dirs(...new Set(libraryDirs)),
    { path: 'home/user1000', type: 'dir', uid: 1000, gid: 1000 },
    { path: 'root', type: 'dir', mode: 0o700 },
    { path: 'tmp', type: 'dir', mode: 0o1777 },
    { path: 'bin/busybox', type: 'file', source: busybox, mode: 0o755 },
    ...applets.map((name) => ({ path: `bin/${name}`, type: 'hardlink', linkname: 'bin/busybox', mode: 0o755 })),
    ...libraries,
    { path: 'bin/ipcs', content: IPCS, mode: 0o755 },
    { path: 'bin/pgrep', content: PGREP, mode: 0o755 },
    { path: 'etc/passwd', content: PASSWD },
    { path: 'etc/group', content: GROUP },
    { path: 'var/www/index.html', content: '<html><body><h1>It works!</h1></body></html>\n' },
  ];
}

/** `/a/b/c` → `a`, `a/b`, `a/b/c`. */
function ancestors(dir) {
  const parts = dir.split('/').filter(Boolean);
  return parts.map((_, i) => parts.slice(0, i + 1).join('/'));
}

/**
 * `registry/repository:tag` → image. Images that critest expects to be different images get
 * a label naming them, so their configs (and ids) differ while their layers are shared.
 */
export async function buildConformanceImages() {
  const work = mkdtempSync(path.join(tmpdir(), 'tscri-conformance-'));
  try {
    const webserver = compileStatic('webserver.c', work);
    const euid = compileStatic('euid.c', work);
    const base = await layer(userlandEntries(dynamicBusybox()));
    const nginxLayer = await layer([...dirs('usr', 'usr/sbin'), { path: 'usr/sbin/nginx', source: webserver, mode: 0o755 }]);
    const httpdLayer = await layer([...dirs('usr', 'usr/local', 'usr/local/bin'), { path: 'usr/local/bin/httpd-foreground', content: HTTPD_FOREGROUND, mode: 0o755 }]);
    const nnpLayer = await layer([...dirs('usr', 'usr/local', 'usr/local/bin'), { path: 'usr/local/bin/nnp', source: euid, mode: 0o4755 }]);

    const shell = (name, extra = {}) =>
      image({ layers: [base], config: { Env: [PATH_ENV], Cmd: ['sh'], Labels: { 'tscri.conformance.image': name }, ...extra } });
    const webServer = (name, port) =>
      image({
        layers: [base, nginxLayer],
        config: { Env: [PATH_ENV], Entrypoint: ['/usr/sbin/nginx'], Cmd: [String(port)], ExposedPorts: { [`${port}/tcp`]: {} }, Labels: { 'tscri.conformance.image': name } },
      });
    const tags = shell('test-image-tags');
    const benchmarkBusybox = shell('benchmark-busybox');

    return new Map([
      [`${E2E}/busybox:1.29-2`, shell('busybox')],
      [`${E2E}/nginx:1.14-2`, webServer('nginx', 80)],
      [
        `${E2E}/httpd:2.4.39-4`,
        image({
          layers: [base, httpdLayer],
          config: { Env: [PATH_ENV], Cmd: ['httpd-foreground'], ExposedPorts: { '80/tcp': {} }, Labels: { 'tscri.conformance.image': 'httpd' } },
        }),
      ],
      [`${E2E}/nonewprivs:1.3`, image({ layers: [base, nnpLayer], config: { Env: [PATH_ENV], Entrypoint: ['/usr/local/bin/nnp'] } })],
      [`${CRI_TOOLS}/hostnet-nginx-amd64:latest`, webServer('hostnet-nginx', 12003)],
      [`${CRI_TOOLS}/test-image-user-uid:latest`, shell('user-uid', { User: '1002' })],
      [`${CRI_TOOLS}/test-image-user-username:latest`, shell('user-username', { User: 'www-data' })],
      [`${CRI_TOOLS}/test-image-user-uid-group:latest`, shell('user-uid-group', { User: '1003:1003' })],
      [`${CRI_TOOLS}/test-image-user-username-group:latest`, shell('user-username-group', { User: 'www-data:www-data' })],
      [`${CRI_TOOLS}/test-image-predefined-group:latest`, shell('predefined-group', { User: '1000' })],
      [`${CRI_TOOLS}/test-image-latest:latest`, shell('test-image-latest')],
      [`${CRI_TOOLS}/test-image-tag:test`, shell('test-image-tag')],
      [`${CRI_TOOLS}/test-image-tag:all`, shell('test-image-tag')],
      [`${CRI_TOOLS}/test-image-1:latest`, shell('test-image-1')],
      [`${CRI_TOOLS}/test-image-2:latest`, shell('test-image-2')],
      [`${CRI_TOOLS}/test-image-3:latest`, shell('test-image-3')],
      // One image under three tags: critest expects a single image listing all three.
      [`${CRI_TOOLS}/test-image-tags:1`, tags],
      [`${CRI_TOOLS}/test-image-tags:2`, tags],
      [`${CRI_TOOLS}/test-image-tags:3`, tags],
      // `critest -benchmark` pulls these; one image is enough for timing pulls.
      ...['1.35.0-glibc', '1-uclibc', '1', '1-glibc', '1-musl'].map((tag) => [`${BENCHMARK}/busybox:${tag}`, benchmarkBusybox]),
    ]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** `registry.k8s.io/e2e-test-images/busybox:1.29-2` → the path under the local registry. */
function splitReference(reference) {
  const slash = reference.indexOf('/');
  const colon = reference.lastIndexOf(':');
  return { upstream: reference.slice(0, slash), repository: reference.slice(slash + 1, colon), tag: reference.slice(colon + 1) };
}

/** Build and push every image to `registry` (host:port) under its upstream repository path. */
export async function pushConformanceImages(registry) {
  const results = [];
  for (const [reference, item] of await buildConformanceImages()) {
    const { repository, tag } = splitReference(reference);
    const { digest, skipped } = await push(registry, repository, tag, item);
    results.push({ reference, digest, pushed: !skipped });
  }
  return results;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { registry: { type: 'string' } } });
  if (!values.registry) {
    console.error('usage: node hack/conformance/images.mjs --registry HOST:PORT');
    process.exit(2);
  }
  const started = performance.now();
  const results = await pushConformanceImages(values.registry);
  for (const { reference, digest, pushed } of results) console.log(`${reference}  ${digest}  ${pushed ? 'pushed' : 'unchanged'}`);
  console.log(`${results.length} tags in ${Math.round(performance.now() - started)} ms (registry ${values.registry})`);
}
