/**
 * Keys that appear more than once in one object of a JSON text, as `path.key`. JSON.parse
 * silently keeps the last of them, so a checker has to read the text itself; this is a
 * small reader for well-formed JSON (it throws on anything else).
 */
export function duplicateKeys(text: string): string[] {
  const found: string[] = [];
  let i = 0;
  const ws = (): void => {
    while (/\s/.test(text[i] ?? '')) i++;
  };
  const expect = (c: string): void => {
    if (text[i] !== c) throw new Error(`expected ${c} at ${i} in ${text}`);
    i++;
  };
  const string = (): string => {
    const start = i;
    expect('"');
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (path: string): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const seen = new Set<string>();
      ws();
      if (text[i] === '}') return void i++;
      for (;;) {
        ws();
        const key = string();
        if (seen.has(key)) found.push(`${path}${key}`);
        seen.add(key);
        ws();
        expect(':');
        value(`${path}${key}.`);
        ws();
        if (text[i] === ',') i++;
        else return expect('}');
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') return void i++;
      for (let n = 0; ; n++) {
        value(`${path}${n}.`);
        ws();
        if (text[i] === ',') i++;
        else return expect(']');
      }
    }
    if (c === '"') return void string();
    const literal = /^(?:true|false|null|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)/.exec(text.slice(i));
    if (!literal) throw new Error(`unexpected ${c} at ${i} in ${text}`);
    i += literal[0].length;
  };
  value('');
  return found;
}
