import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';

describe('[metrics] address', () => {
  it('is off unless an address is given (absent, an empty table, or "")', () => {
    expect(parseConfig('').metrics).toBeUndefined();
    expect(parseConfig('[metrics]').metrics).toBeUndefined();
    expect(parseConfig('[metrics]\naddress = ""').metrics).toBeUndefined();
  });

  it.each([
    ['127.0.0.1:9101', { host: '127.0.0.1', port: 9101 }],
    ['0.0.0.0:1', { host: '0.0.0.0', port: 1 }],
    ['10.1.2.3:65535', { host: '10.1.2.3', port: 65535 }],
    ['[::1]:9101', { host: '::1', port: 9101 }],
    ['[fe80::1%eth0]:9101', { host: 'fe80::1%eth0', port: 9101 }],
    ['localhost:9101', { host: 'localhost', port: 9101 }],
  ])('reads %j', (address, expected) => {
    expect(parseConfig(`[metrics]\naddress = "${address}"`).metrics).toEqual(expected);
  });

  it('is read as a dotted key too', () => {
    expect(parseConfig('metrics.address = "127.0.0.1:9101"').metrics).toEqual({ host: '127.0.0.1', port: 9101 });
  });

  it.each([
    ['9101', /metrics\.address: "9101" is not host:port/],
    [':9101', /metrics\.address: ":9101" names no host/],
    ['[]:9101', /metrics\.address: .*names no host/],
    ['::1:9101', /is not host:port/],
    ['[127.0.0.1]:9101', /IPv6 address in brackets/],
    ['example.com:9101', /must be an IPv4 address, an IPv6 address in brackets, or localhost/],
    ['127.0.0.1:0', /port must be between 1 and 65535/],
    ['127.0.0.1:65536', /port must be between 1 and 65535/],
    ['127.0.0.1:123456', /is not host:port/],
    ['127.0.0.1:http', /is not host:port/],
    ['http://127.0.0.1:9101/metrics', /is not host:port/],
    ['999.0.0.1:9101', /must be an IPv4 address/],
    ['127.0.0.1:9101 ', /is not host:port/],
  ])('refuses %j naming the key', (address, message) => {
    expect(() => parseConfig(`[metrics]\naddress = "${address}"`)).toThrow(message);
  });

  it('refuses other keys and types', () => {
    expect(() => parseConfig('[metrics]\nport = 9101')).toThrow(/metrics\.port: unknown key \(expected one of: address\)/);
    expect(() => parseConfig('[metrics]\naddress = 9101')).toThrow(/metrics\.address: must be a string/);
    expect(() => parseConfig('metrics = "127.0.0.1:9101"')).toThrow(/config\.metrics: must be a table/);
  });

  it('quotes at most 64 characters of a bad address', () => {
    const long = 'x'.repeat(10_000);
    expect(() => parseConfig(`[metrics]\naddress = "${long}"`)).toThrow(new RegExp(`^config\\.metrics\\.address: "x{64}" is not host:port`));
  });
});
