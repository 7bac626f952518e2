import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { IdIndex } from '../../src/persistence/id-index.js';
import { NameRegistry } from '../../src/persistence/names.js';
import { KeyedMutex } from '../../src/util/keyed-mutex.js';
import { UndoStack } from '../../src/util/undo.js';

describe('the undo stack', () => {
  it('runs undos newest first and keeps going past a failing one', async () => {
    const ran: string[] = [];
    const undo = new UndoStack();
    undo.push('a', async () => void ran.push('a'));
    undo.push('b', async () => {
      ran.push('b');
      throw new Error('stuck');
    });
    undo.push('c', async () => void ran.push('c'));
    expect(await undo.unwind(silentLogger())).toEqual(['b']);
    expect(ran).toEqual(['c', 'b', 'a']);
  });

  it('runs nothing after commit', async () => {
    const undo = new UndoStack();
    let ran = false;
    undo.push('a', async () => void (ran = true));
    undo.commit();
    await undo.unwind(silentLogger());
    expect(ran).toBe(false);
  });
});

describe('ids and names', () => {
  it('finds objects by full id or unique prefix', () => {
    const index = new IdIndex<string>('sandbox');
    index.set('abc123', 'one');
    index.set('abd456', 'two');
    expect(index.get('abc')).toBe('one');
    expect(index.get('abd456')).toBe('two');
    expect(() => index.get('ab')).toThrow(/ambiguous/);
    expect(() => index.get('zz')).toThrow(/not found/);
    expect(index.find('zz')).toBeUndefined();
  });

  it('refuses a name held by another id until it is released', () => {
    const names = new NameRegistry('sandbox');
    names.reserve('web_ns_u_0', 'id1');
    names.reserve('web_ns_u_0', 'id1');
    expect(() => names.reserve('web_ns_u_0', 'id2')).toThrow(/reserved for id1/);
    names.release('web_ns_u_0', 'id2');
    expect(names.ownerOf('web_ns_u_0')).toBe('id1');
    names.release('web_ns_u_0', 'id1');
    names.reserve('web_ns_u_0', 'id2');
  });
});

describe('the keyed mutex', () => {
  it('serialises work on one key and lets other keys run alongside', async () => {
    const mutex = new KeyedMutex();
    const events: string[] = [];
    const job = (key: string, name: string, ms: number) =>
      mutex.run(key, async () => {
        events.push(`${name}+`);
        await new Promise((r) => setTimeout(r, ms));
        events.push(`${name}-`);
      });
    await Promise.all([job('a', 'a1', 30), job('a', 'a2', 1), job('b', 'b1', 5)]);
    expect(events.indexOf('a2+')).toBeGreaterThan(events.indexOf('a1-'));
    expect(events.indexOf('b1+')).toBeLessThan(events.indexOf('a1-'));
  });
});
