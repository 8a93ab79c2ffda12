export * from './errors';
export * from './headers';
export * from './metadata';
export * from './checksum';
export * from './concat';
export * from './location';
export * from './cors';
