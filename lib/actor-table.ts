// The core's queue and gate state of one runtime's objects, by handle (see `actor_*` in src/lib.rs).

import { native } from "./native.js";

/**
 * A thin face over the core's free functions: every event goes through several of these calls,
 * and free functions cross the napi boundary about ten times faster than class methods.
 */
export class ActorTable {
  readonly #id = native.actorsCreate();

  open(): number {
    return native.actorOpen(this.#id);
  }
  close(handle: number): void {
    native.actorClose(this.#id, handle);
  }
  /** Queues an event token; true when the caller must schedule a drain. */
  enqueue(handle: number, token: number): boolean {
    return native.actorEnqueue(this.#id, handle, token);
  }
  /** The next token the gate lets through, or -1 (which ends the drain). */
  nextEvent(handle: number): number {
    return native.actorNextEvent(this.#id, handle);
  }
  /** After starting `token`: true (and the event is back at the front) if the gate closed meanwhile. */
  waitForGate(handle: number, token: number): boolean {
    return native.actorWaitForGate(this.#id, handle, token);
  }
  finish(handle: number, epoch: number): void {
    native.actorFinish(this.#id, handle, epoch);
  }
  keepAlive(handle: number): void {
    native.actorKeepAlive(this.#id, handle);
  }
  /** Closes the input gate once more; returns the epoch to release it with. */
  hold(handle: number): number {
    return native.actorHold(this.#id, handle);
  }
  /** True when the caller must schedule a drain. */
  release(handle: number, epoch: number): boolean {
    return native.actorRelease(this.#id, handle, epoch);
  }
  /** Forgets the live instance; true when the caller must schedule a drain. */
  reset(handle: number): boolean {
    return native.actorReset(this.#id, handle);
  }
  epoch(handle: number): number {
    return native.actorEpoch(this.#id, handle);
  }
  setLive(handle: number, live: boolean): void {
    native.actorSetLive(this.#id, handle, live);
  }
  /** Handles of live objects with nothing to do for at least `idleMs`. */
  idle(idleMs: number): number[] {
    return native.actorsIdle(this.#id, idleMs);
  }
  /** Frees the table (the runtime is disposed). */
  free(): void {
    native.actorsFree(this.#id);
  }
}
