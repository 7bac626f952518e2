/** CRI messages in the form the server sends them: fields optional, int64 as number or string. */
export type * from './generated/wire.js';
