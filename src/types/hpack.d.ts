/** The part of hpack.js (no bundled types) tscri uses. */
declare module 'hpack.js' {
  interface HeaderField {
    name: string;
    value: string;
    neverIndex?: boolean;
  }
  interface Decompressor {
    write(chunk: Buffer): boolean;
    execute(callback?: (err: Error | null) => void): void;
    read(): HeaderField | null;
    updateTableSize(size: number): void;
  }
  interface Compressor {
    write(headers: HeaderField[]): boolean;
    read(): Buffer | null;
  }
  const hpack: {
    decompressor: { create(options: { table: { size: number } }): Decompressor };
    compressor: { create(options: { table: { size: number } }): Compressor };
  };
  export default hpack;
}
