export * from './types';
export * from './ranges';
export { UploadSessions, SessionOptions, CreateSession, WriteRequest, WriteOutcome, CompleteOptions, CHECKSUM_ALGORITHMS } from './engine';
export { sweepSessions, ExpireHook } from './sweep';
export { LmdbSessionStore, sessionsDir } from './lmdb-sessions';
export { readSessionData } from './space';
export { sweepTakeovers } from './takeover-sweep';
export { checkSessionId, mirrorRange } from './mirror';
