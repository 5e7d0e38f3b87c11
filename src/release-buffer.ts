/**
 * Gives a large body's memory back now, instead of when the garbage collector next runs: the
 * buffer is detached (moved into a new, empty one), and the bytes it held are freed at once.
 * V8 collects a buffer's bytes only with the object that owns them, and starts a collection for
 * such bytes only once tens of megabytes of them have piled up: a stream of 1 MiB messages kept
 * that much garbage alive at all times, in an isolate of 128 MB (BENCHMARKS.md, "Memory"). Call it
 * only on a buffer nothing will read again; it is a no-op where `transfer` is not implemented.
 */
export const releaseBuffer = (buffer: ArrayBufferLike): void => {
  const transferable = buffer as ArrayBufferLike & { transfer?: (length: number) => ArrayBuffer; detached?: boolean };
  if (buffer.byteLength < RELEASE_FROM_BYTES || transferable.detached === true || typeof transferable.transfer !== "function") return;
  transferable.transfer(0);
};

/** Smaller buffers are left to the collector: releasing them would cost more than it saves. */
const RELEASE_FROM_BYTES = 64 * 1024;
