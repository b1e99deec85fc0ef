// The end of a turn, where the gates act: once the microtasks queued by now have all run.

/**
 * Runs `fn` after the current turn: a microtask queues it on the tick queue, which Node empties
 * only after the microtask queue has drained. So the code awaiting a storage result (a microtask)
 * runs before the input gate reopens or the turn's writes commit, as in workerd.
 */
export function afterTurn(fn: () => void): void {
  queueMicrotask(() => process.nextTick(fn));
}
