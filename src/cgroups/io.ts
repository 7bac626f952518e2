/**
 * Block IO per device: v1's blkio files (`<major>:<minor> <Op> <value>` lines) and v2's io.stat
 * (`<major>:<minor> rbytes=… wbytes=… rios=… wios=… dbytes=… dios=…`).
 */
import path from 'node:path';
import { readText } from './files.js';

export interface IoDeviceStats {
  major: number;
  minor: number;
  readBytes: number;
  writeBytes: number;
  reads: number;
  writes: number;
}

/**
 * v1 keeps the same counters in several files depending on the kernel and IO scheduler; as
 * runc does, the first pair that can be read wins. The throttle pair comes first: blk-throttle
 * sees every bio whatever the scheduler (on recent kernels, 6.18 here, only once a throttle
 * rule was set up on the queue; until then it lists nothing), while the CFQ and BFQ pairs count only
 * devices that scheduler drives.
 */
const V1_FILE_PAIRS: ReadonlyArray<readonly [bytes: string, ios: string]> = [
  ['blkio.throttle.io_service_bytes_recursive', 'blkio.throttle.io_serviced_recursive'],
  ['blkio.io_service_bytes_recursive', 'blkio.io_serviced_recursive'],
  ['blkio.bfq.io_service_bytes_recursive', 'blkio.bfq.io_serviced_recursive'],
  ['blkio.throttle.io_service_bytes', 'blkio.throttle.io_serviced'],
];

export async function readIoV1(blkioDir: string): Promise<IoDeviceStats[]> {
  for (const [bytesFile, iosFile] of V1_FILE_PAIRS) {
    const bytes = await readText(path.join(blkioDir, bytesFile));
    if (bytes === undefined) continue;
    return mergeV1(parseBlkio(bytes), parseBlkio((await readText(path.join(blkioDir, iosFile))) ?? ''));
  }
  return [];
}

export async function readIoV2(dir: string): Promise<IoDeviceStats[]> {
  return parseIoStat((await readText(path.join(dir, 'io.stat'))) ?? '');
}

/** `8:0 Read 4096` lines as device → operation → value; the trailing `Total N` is skipped. */
export function parseBlkio(text: string): Map<string, Map<string, number>> {
  const devices = new Map<string, Map<string, number>>();
  for (const line of text.split('\n')) {
    const [device, op, value] = line.trim().split(/\s+/);
    if (!device || !/^\d+:\d+$/.test(device) || !op || !value || !/^\d+$/.test(value)) continue;
    const ops = devices.get(device) ?? new Map<string, number>();
    ops.set(op, Number(value));
    devices.set(device, ops);
  }
  return devices;
}

function mergeV1(bytes: Map<string, Map<string, number>>, ios: Map<string, Map<string, number>>): IoDeviceStats[] {
  return [...bytes.keys()].map((device) => ({
    ...majorMinor(device),
    readBytes: bytes.get(device)?.get('Read') ?? 0,
    writeBytes: bytes.get(device)?.get('Write') ?? 0,
    reads: ios.get(device)?.get('Read') ?? 0,
    writes: ios.get(device)?.get('Write') ?? 0,
  }));
}

export function parseIoStat(text: string): IoDeviceStats[] {
  const out: IoDeviceStats[] = [];
  for (const line of text.split('\n')) {
    const [device, ...fields] = line.trim().split(/\s+/);
    if (!device || !/^\d+:\d+$/.test(device)) continue;
    const values = new Map(fields.map((f) => f.split('=') as [string, string]));
    const count = (key: string): number => (/^\d+$/.test(values.get(key) ?? '') ? Number(values.get(key)) : 0);
    out.push({ ...majorMinor(device), readBytes: count('rbytes'), writeBytes: count('wbytes'), reads: count('rios'), writes: count('wios') });
  }
  return out;
}

function majorMinor(device: string): { major: number; minor: number } {
  const [major, minor] = device.split(':').map(Number) as [number, number];
  return { major, minor };
}
