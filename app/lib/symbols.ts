/** Where app.ts keeps the worker's store on the Application. */
export const STORE = Symbol.for('egg-sonofs#store');
/** Where agent.ts keeps the leader on the Agent. */
export const LEADER = Symbol.for('egg-sonofs#leader');
/** Where app.ts keeps the worker's upload-session engine on the Application. */
export const SESSIONS = Symbol.for('egg-sonofs#sessions');
/** Where app.ts keeps the worker's reader of group peers' copies (cluster mode) on the Application. */
export const REPLICAS = Symbol.for('egg-sonofs#replicas');
