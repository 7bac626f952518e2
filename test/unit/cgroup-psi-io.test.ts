import { describe, expect, it } from 'vitest';
import { parseBlkio, parseIoStat } from '../../src/cgroups/io.js';
import { parsePsi } from '../../src/cgroups/psi.js';
import { parseNetDev } from '../../src/metrics/net-dev.js';

describe('pressure stall information', () => {
  it('parses some and full lines, totals in µs', () => {
    expect(parsePsi('some avg10=0.12 avg60=0.05 avg300=0.01 total=12345\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=678\n')).toEqual({
      some: { avg10: 0.12, avg60: 0.05, avg300: 0.01, totalUs: 12345 },
      full: { avg10: 0, avg60: 0, avg300: 0, totalUs: 678 },
    });
  });

  it('keeps a file without a full line (cpu.pressure before 5.13)', () => {
    expect(parsePsi('some avg10=1.00 avg60=2.00 avg300=3.00 total=9\n')).toEqual({ some: { avg10: 1, avg60: 2, avg300: 3, totalUs: 9 }, full: undefined });
  });

  it('answers undefined for an empty or malformed file', () => {
    expect(parsePsi('')).toBeUndefined();
    expect(parsePsi('some avg10=x avg60=0 avg300=0 total=1\n')).toBeUndefined();
    expect(parsePsi('some avg10=0.1 avg60=0.1 avg300=0.1\n')).toBeUndefined();
    expect(parsePsi('full avg10=0.1 avg60=0.1 avg300=0.1 total=5\n')).toBeUndefined();
  });
});

describe('block IO counters', () => {
  it('reads v1 blkio lines per device and operation, skipping the grand total', () => {
    const parsed = parseBlkio('8:0 Read 10\n8:0 Write 20\n8:16 Read 5\nTotal 35\nnot a line\n8:0 Read x\n');
    expect([...parsed.keys()]).toEqual(['8:0', '8:16']);
    expect(Object.fromEntries(parsed.get('8:0')!)).toEqual({ Read: 10, Write: 20 });
  });

  it('reads v2 io.stat, a missing field as 0', () => {
    expect(parseIoStat('8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0\n253:1 rbytes=7\n\ngarbage\n')).toEqual([
      { major: 8, minor: 0, readBytes: 1, writeBytes: 2, reads: 3, writes: 4 },
      { major: 253, minor: 1, readBytes: 7, writeBytes: 0, reads: 0, writes: 0 },
    ]);
  });
});

describe('interface counters', () => {
  it('reads /proc/<pid>/net/dev with all eight counters per interface', () => {
    const text = [
      'Inter-|   Receive                                                |  Transmit',
      ' face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed',
      '    lo:     120       2    0    0    0     0          0         0      120       2    0    0    0     0       0          0',
      '  eth0: 5000000    4000    1    2    0     0          0         0  7000000    5000    3    4    0     0       0          0',
    ].join('\n');
    expect(parseNetDev(text)).toEqual([
      { name: 'lo', rxBytes: 120, rxPackets: 2, rxErrors: 0, rxDropped: 0, txBytes: 120, txPackets: 2, txErrors: 0, txDropped: 0 },
      { name: 'eth0', rxBytes: 5000000, rxPackets: 4000, rxErrors: 1, rxDropped: 2, txBytes: 7000000, txPackets: 5000, txErrors: 3, txDropped: 4 },
    ]);
  });
});
