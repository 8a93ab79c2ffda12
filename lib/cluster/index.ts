export { RedisClient, RedisSubscriber, Script, keyspace, withTimeout } from './redis';
export { ClusterRegistry, RegistryOptions, RegistrySnapshot, RegistryStatus, NodeEntry, NodeIdentity, NodeStats, NodeState, Logger } from './registry';
export { ClusterLease, LeaseOptions, LeaseHolder } from './lease';
export { NodeConflictError } from './errors';
export { nodeInstanceId } from './instance';
export { DEV_CLUSTER_SECRET, NODE_AUTH_HEADER, signNodeRequest, verifyNodeRequest } from './node-auth';
export { ClusterReport, ClusterView, NodeView, GroupView, clusterView, embeddedView } from './view';
export { registryLiveness } from './liveness';
