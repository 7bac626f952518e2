import { EventEmitter } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { InternalError, InvalidArgumentError, NotFoundError, DeadlineExceededError, FailedPreconditionError, AlreadyExistsError, logLevelOf } from '../../src/errors.js';
import { createLogger, rewriteLine } from '../../src/log.js';
import { unary, type WrapOptions } from '../../src/server/wrap.js';
import { duplicateKeys } from './json-keys.js';

/** A logger whose lines land in an array, as they would be written to stderr. */
function captured(format: 'json' | 'text' = 'json') {
  const lines: string[] = [];
  const log = createLogger('debug', format, { write: (line: string) => void lines.push(...line.split('\n').filter(Boolean)) });
  return { log, lines };
}

function runUnary<Req>(handler: grpc.handleUnaryCall<Req, unknown>, request: Req): Promise<unknown> {
  const call = Object.assign(new EventEmitter(), { request }) as unknown as grpc.ServerUnaryCall<Req, unknown>;
  return new Promise((resolve) => handler(call, (error) => resolve(error)));
}

describe('the duplicate-key reader the log tests rely on', () => {
  it('finds keys repeated in one object, at any depth, and only those', () => {
    expect(duplicateKeys('{"a":1,"b":{"c":2,"c":3},"a":"x"}')).toEqual(['b.c', 'a']);
    expect(duplicateKeys('{"a":[{"k":1},{"k":2}],"s":"\\"a\\":1"}')).toEqual([]);
  });
});

describe('daemon log lines', () => {
  it('carry each key once when a child binds a key its parent has, and the innermost value wins', () => {
    const { log, lines } = captured();
    // As the RPC wrapper and a service build them: the request's id prefix, then the full id.
    const call = log.child({ rpc: 'CreateContainer', podSandboxId: 'abc' });
    const op = call.child({ containerId: 'c1', podSandboxId: 'abcdef' });
    op.error({ err: 'first', containerId: 'c1' }, 'failed');
    op.child({ err: 'bound' }).warn({ err: 'own' }, 'again');
    expect(lines).toHaveLength(2);
    for (const line of lines) expect(duplicateKeys(line)).toEqual([]);
    expect(JSON.parse(lines[0]!)).toMatchObject({ rpc: 'CreateContainer', podSandboxId: 'abcdef', containerId: 'c1', err: 'first', level: 'error', msg: 'failed' });
    expect(JSON.parse(lines[1]!)).toMatchObject({ err: 'own', level: 'warn' });
  });

  it('read as one line per entry in text format: time, level, message, then key=value', () => {
    const { log, lines } = captured('text');
    log.child({ rpc: 'RunPodSandbox', podName: 'web' }).info({ err: 'two words', n: 3, ok: true, obj: { a: 1 } }, 'sandbox ready');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO  sandbox ready rpc=RunPodSandbox podName=web err="two words" n=3 ok=true obj=\{"a":1\}$/);
    expect(lines[0]).not.toContain('pid=');
  });

  it('keep a message on its line in text format, and pass lines that are not JSON through', () => {
    expect(rewriteLine('{"time":"t","level":"warn","msg":"a\\nb","k":"x\\ny"}\n', 'text')).toBe('t WARN  a\\nb k="x\\ny"\n');
    expect(rewriteLine('not json\n', 'json')).toBe('not json\n');
  });
});

describe('the RPC wrapper', () => {
  const options = (log: WrapOptions['log']): WrapOptions => ({
    log,
    isReady: () => true,
    podOf: (ids) => (ids.podSandboxId?.startsWith('pod1') || ids.containerId === 'ctr1' ? { podName: 'web', podNamespace: 'shop' } : undefined),
  });

  it("puts the pod's name and namespace on every line of a pod's call, with each key once", async () => {
    const { log, lines } = captured();
    await runUnary(unary('StopContainer', options(log), async (_req, ctx) => {
      ctx.log.child({ containerId: 'ctr1', podSandboxId: 'pod1-full' }).info('container stopped');
      return {};
    }), { container_id: 'ctr1' });
    await runUnary(unary('RunPodSandbox', options(log), async () => ({ pod_sandbox_id: 'pod2' })), { config: { metadata: { name: 'new', namespace: 'ns' } } });
    await runUnary(unary('CreateContainer', options(log), async () => ({ container_id: 'ctr9' })), {
      pod_sandbox_id: 'unknown',
      config: { metadata: { name: 'the-container' } },
      sandbox_config: { metadata: { name: 'from-request', namespace: 'ns2' } },
    });
    for (const line of lines) expect(duplicateKeys(line)).toEqual([]);
    const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(entries.filter((e) => e.rpc === 'StopContainer')).toHaveLength(3);
    for (const e of entries.filter((e) => e.rpc === 'StopContainer')) expect(e).toMatchObject({ podName: 'web', podNamespace: 'shop', containerId: 'ctr1' });
    for (const e of entries.filter((e) => e.rpc === 'RunPodSandbox')) expect(e).toMatchObject({ podName: 'new', podNamespace: 'ns' });
    expect(entries.find((e) => e.rpc === 'RunPodSandbox' && e.msg === 'done')).toMatchObject({ podSandboxId: 'pod2' });
    for (const e of entries.filter((e) => e.rpc === 'CreateContainer')) expect(e).toMatchObject({ podName: 'from-request', podNamespace: 'ns2' });
  });

  it("logs a client's mistake at info, a timeout at warn and a runtime failure at error", async () => {
    const { log, lines } = captured();
    const failWith = (err: Error) => runUnary(unary('StartContainer', options(log), async () => Promise.reject(err)), { container_id: 'x' });
    await failWith(new NotFoundError('no such container'));
    await failWith(new DeadlineExceededError('took too long'));
    await failWith(new InternalError('runc create failed'));
    await failWith(new Error('a bug'));
    const failed = lines.map((l) => JSON.parse(l) as { msg: string; level: string; code: string }).filter((e) => e.msg === 'failed');
    expect(failed.map((e) => [e.level, e.code])).toEqual([
      ['info', 'NotFound'],
      ['warn', 'DeadlineExceeded'],
      ['error', 'Internal'],
      ['error', 'Internal'],
    ]);
  });

  it('maps every client mistake below error', () => {
    for (const err of [new InvalidArgumentError('x'), new NotFoundError('x'), new AlreadyExistsError('x'), new FailedPreconditionError('x')]) {
      expect(logLevelOf(err)).toBe('info');
    }
  });
});

describe('errors in log lines', () => {
  it('keep the message, stack and cause of an Error, and its own fields', () => {
    const { log, lines } = captured();
    const cause = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5000'), { code: 'ECONNREFUSED' });
    log.error({ err: new InternalError('pull failed', { cause, hint: 'check the registry' }) }, 'failed');
    const { err } = JSON.parse(lines[0]!) as { err: Record<string, unknown> & { cause: Record<string, unknown> } };
    expect(err).toMatchObject({ type: 'InternalError', message: 'pull failed', code: 'Internal', hint: 'check the registry' });
    expect(err.stack).toMatch(/^InternalError: pull failed\n\s+at /);
    expect(err.cause).toMatchObject({ type: 'Error', message: 'connect ECONNREFUSED 127.0.0.1:5000', code: 'ECONNREFUSED' });
    expect(err.cause.stack).toMatch(/^Error: connect ECONNREFUSED/);
  });

  it('stay on one line in text format, and leave a value that is not an error as it is', () => {
    const { log, lines } = captured('text');
    log.warn({ err: new Error('outer', { cause: new Error('inner') }) }, 'failed');
    log.warn({ err: 'plain words' }, 'failed');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/ err=\{"type":"Error","message":"outer","stack":"Error: outer\\n.*"cause":\{"type":"Error","message":"inner"/);
    expect(lines[1]).toMatch(/ err="plain words"$/);
  });

  it('shorten a message of megabytes', () => {
    const { log, lines } = captured();
    log.error({ err: new Error('x'.repeat(1_000_000)) }, 'failed');
    expect(lines[0]!.length).toBeLessThan(40_000);
    expect((JSON.parse(lines[0]!) as { err: { message: string } }).err.message).toMatch(/^x{4096}… \(1000000 characters\)$/);
  });
});
