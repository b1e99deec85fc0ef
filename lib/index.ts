// durable-node: Cloudflare Durable Objects for Node.js — the public entry point.
/// <reference path="../types/cloudflare-test.d.ts" preserve="true" />

export { createRuntime } from "./runtime.js";
export type { Runtime, RuntimeEnv, RuntimeOptions, DurableObjectClass, DurableObjectClassOptions } from "./runtime.js";
export { DurableObjectNamespace } from "./namespace.js";
export { DurableObjectId } from "./id.js";
export { DurableObjectStub, type Rpc, type TypedStub } from "./stub.js";
export { DurableObjectState } from "./state.js";
export { DurableObject, RpcTarget, RpcStub, WorkerEntrypoint, env } from "./workers.js";
export { ManualClock, type Clock } from "./clock.js";
export { getPlatformProxy, type GetPlatformProxyOptions, type PlatformProxy } from "./platform.js";
export { WebSocket, WebSocketPair, WebSocketRequestResponsePair, CloseEvent, ErrorEvent } from "./websocket.js";
// `@cloudflare/vitest-pool-workers`'s main export, for projects that install durable-node under that name.
export { cloudflareTest } from "./vitest/index.js";
