export { NODE_API, Peer, PeerStatus, ReplicationReport, Replicator, ReplicatorOptions } from './replicator';
export { BadCopy, FileSource, ReplicaReader } from './replica-read';
export { LedgerSnapshot, listOwnBundles, snapshotLedger, streamRecords } from './source';
export { parseBundle, parseInstance, parseRanges } from './protocol';
export { peerDir, replicaBundlePath, replicasDir } from './replica-files';
export { COPY_NOW_PATH, CopyAckOptions, CopyMember, MemberAck, NewRecord, askMembersToCopy } from './copy-ack';
