/**
 * Reading the spec directories into a table of devices. Each directory is read on its own
 * (no subdirectories), its .json and .yaml files in name order; a file that cannot be read
 * or is invalid is reported and skipped, never fatal. A device defined in several
 * directories comes from the last one (the dynamic /var/run/cdi beats the static /etc/cdi);
 * defined twice at that same priority it is ambiguous and usable from neither file.
 */
import { promises as fs, type Dirent } from 'node:fs';
import path from 'node:path';
import { errnoCode, messageOf } from '../errors.js';
import { readFileBelow } from '../util/confined.js';
import { parseSpec, specFormatOf } from './parse.js';
import type { CdiDevice, CdiSpec } from './types.js';

/** Real spec files are a few KiB; a bigger file is a mistake or an attack on the daemon's memory. */
export const MAX_SPEC_FILE_BYTES = 1024 * 1024;
/** Bounds a directory listing that is read on every change. */
const MAX_FILES_PER_DIR = 4096;

export interface LoadedSpec {
  file: string;
  /** Index of its directory in spec_dirs: higher wins. */
  priority: number;
  spec: CdiSpec;
}

export interface SpecProblem {
  /** The file or directory at fault. */
  path: string;
  reason: string;
}

export interface DeviceEntry {
  qualifiedName: string;
  device: CdiDevice;
  from: LoadedSpec;
}

export interface DeviceTable {
  devices: Map<string, DeviceEntry>;
  /** Qualified name → the files that define it at the same, winning priority. */
  ambiguous: Map<string, string[]>;
  problems: SpecProblem[];
  specCount: number;
}

export async function scanSpecDirs(dirs: readonly string[]): Promise<DeviceTable> {
  const specs: LoadedSpec[] = [];
  const problems: SpecProblem[] = [];
  for (const [priority, dir] of dirs.entries()) {
    for (const result of await readSpecDir(dir)) {
      if ('reason' in result) problems.push(result);
      else specs.push({ ...result, priority });
    }
  }
  return deviceTable(specs, problems);
}

async function readSpecDir(dir: string): Promise<Array<{ file: string; spec: CdiSpec } | SpecProblem>> {
  let entries: Dirent[];
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch (err) {
    // A directory nobody has made yet (often /var/run/cdi) simply holds no devices.
    if (errnoCode(err) === 'ENOENT') return [];
    return [{ path: dir, reason: `cannot read the directory: ${messageOf(err)}` }];
  }
  const names = entries
    .filter((e) => specFormatOf(e.name) !== undefined && !e.isDirectory())
    .map((e) => e.name)
    .sort();
  if (names.length > MAX_FILES_PER_DIR) return [{ path: dir, reason: `holds ${names.length} spec files, more than ${MAX_FILES_PER_DIR}; none read` }];
  const results: Array<{ file: string; spec: CdiSpec } | SpecProblem> = [];
  for (const name of names) {
    const file = path.join(dir, name);
    try {
      results.push({ file, spec: await readSpecFile(dir, name) });
    } catch (err) {
      results.push({ path: file, reason: messageOf(err) });
    }
  }
  return results;
}

/** One spec file: regular, not a symlink, bounded in size, then parsed and validated. */
export async function readSpecFile(dir: string, name: string): Promise<CdiSpec> {
  const bytes = await readFileBelow(dir, name, MAX_SPEC_FILE_BYTES, 'CDI spec');
  return parseSpec(bytes.toString('utf8'), specFormatOf(name)!);
}

export function deviceTable(specs: LoadedSpec[], problems: SpecProblem[] = []): DeviceTable {
  const byName = new Map<string, DeviceEntry[]>();
  for (const from of specs) {
    for (const device of from.spec.devices) {
      const qualifiedName = `${from.spec.kind}=${device.name}`;
      const entries = byName.get(qualifiedName) ?? [];
      entries.push({ qualifiedName, device, from });
      byName.set(qualifiedName, entries);
    }
  }
  const table: DeviceTable = { devices: new Map(), ambiguous: new Map(), problems, specCount: specs.length };
  for (const [name, entries] of byName) {
    const top = Math.max(...entries.map((e) => e.from.priority));
    const winners = entries.filter((e) => e.from.priority === top);
    if (winners.length === 1) {
      table.devices.set(name, winners[0]!);
      continue;
    }
    const files = winners.map((e) => e.from.file);
    table.ambiguous.set(name, files);
    for (const file of files) problems.push({ path: file, reason: `CDI device ${JSON.stringify(name)} is also defined by ${files.filter((f) => f !== file).join(', ')}; it is unusable until one definition goes` });
  }
  return table;
}
