/** A listener of one event type. */
export type Listener<T> = (payload: T) => void;

/**
 * A small typed event emitter: Events maps each event name to its payload type.
 * Listeners run synchronously, in the order they were added. A listener that throws
 * does not stop the others or the emitter's owner: the error is rethrown on a
 * microtask, where the runtime reports it as uncaught (as EventTarget does).
 */
export class Emitter<Events extends { [K in keyof Events]: unknown }> {
  readonly #listeners = new Map<keyof Events, Set<Listener<never>>>();

  /** Adds a listener; the returned function removes it. */
  on<K extends keyof Events>(type: K, listener: Listener<Events[K]>): () => void {
    let set = this.#listeners.get(type);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(type, set);
    }
    set.add(listener as Listener<never>);
    return () => this.off(type, listener);
  }

  /** Adds a listener that runs at most once. */
  once<K extends keyof Events>(type: K, listener: Listener<Events[K]>): () => void {
    const off = this.on(type, (payload) => {
      off();
      listener(payload);
    });
    return off;
  }

  /** Removes a listener added with on. */
  off<K extends keyof Events>(type: K, listener: Listener<Events[K]>): void {
    const set = this.#listeners.get(type);
    set?.delete(listener as Listener<never>);
    if (set?.size === 0) this.#listeners.delete(type);
  }

  /** The number of listeners of type. */
  listenerCount(type: keyof Events): number {
    return this.#listeners.get(type)?.size ?? 0;
  }

  /** Calls every listener of type with payload. */
  protected emit<K extends keyof Events>(type: K, payload: Events[K]): void {
    const set = this.#listeners.get(type);
    if (set === undefined) return;
    for (const listener of [...set] as Listener<Events[K]>[]) {
      try {
        listener(payload);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}
