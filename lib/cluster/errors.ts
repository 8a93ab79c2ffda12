import { SonofsError } from '../errors';

/** 409: another live node already holds this node's group and server in the cluster registry. */
export class NodeConflictError extends SonofsError {
  constructor(message: string) {
    super(409, 'NODE_CONFLICT', message);
  }
}
