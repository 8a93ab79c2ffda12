export * from './types';
export * from './ranges';
export { UploadSessions, SessionOptions, CreateSession, WriteRequest, WriteOutcome, CompleteOptions, CHECKSUM_ALGORITHMS, sweepSessions, ExpireHook } from './engine';
export { LmdbSessionStore, sessionsDir } from './lmdb-sessions';
export { readSessionData } from './space';
