/**
 * workerd's inspector (Chrome DevTools protocol), for what the resident set cannot tell: how much
 * of the isolate's memory is alive. The Worker and its route objects run in one isolate here
 * (`core:user`), so what it reports is theirs together.
 */
import WebSocket from "ws";

export interface HeapUsage {
  /** Bytes of the JS heap in use (live objects, and garbage not yet collected). */
  usedSize: number;
  /** Bytes of the JS heap V8 has taken from the system. */
  totalSize: number;
  /** Bytes held by ArrayBuffers (message bodies), outside the JS heap. */
  backingStorageSize: number;
}

export interface Inspector {
  /** The heap now, garbage included. */
  heapUsage(): Promise<HeapUsage>;
  /** A full garbage collection, then the heap: what is alive. */
  liveHeap(): Promise<HeapUsage>;
  close(): void;
}

/** Connects to the gateway's isolate through workerd's inspector on `port`. */
export const connectInspector = async (port: number): Promise<Inspector> => {
  const targets = (await (await fetch(`http://127.0.0.1:${port}/json`)).json()) as Array<{ title: string; webSocketDebuggerUrl: string }>;
  const target = targets.find(({ title }) => title.includes("core:user"));
  if (!target) throw new Error(`no inspector target for the gateway (${targets.map(({ title }) => title).join(", ")})`);
  const socket = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => socket.once("open", resolve).once("error", reject));
  let id = 0;
  const pending = new Map<number, (result: Record<string, number>) => void>();
  socket.on("message", (data: WebSocket.RawData) => {
    const message = JSON.parse((Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer)).toString()) as {
      id?: number;
      result?: Record<string, number>;
    };
    if (message.id === undefined) return;
    pending.get(message.id)?.(message.result ?? {});
    pending.delete(message.id);
  });
  const call = (method: string) =>
    new Promise<Record<string, number>>((resolve) => {
      const mine = ++id;
      pending.set(mine, resolve);
      socket.send(JSON.stringify({ id: mine, method }));
    });
  const heapUsage = async (): Promise<HeapUsage> => {
    const usage = await call("Runtime.getHeapUsage");
    return {
      usedSize: usage.usedSize ?? Number.NaN,
      totalSize: usage.totalSize ?? Number.NaN,
      backingStorageSize: usage.backingStorageSize ?? Number.NaN,
    };
  };
  return {
    heapUsage,
    liveHeap: async () => {
      await call("HeapProfiler.collectGarbage");
      return heapUsage();
    },
    close: () => socket.close(),
  };
};

/** The most of the isolate's memory found alive while a load ran. */
export interface MostAlive {
  /** JS heap and ArrayBuffers together, in MB, at the sample where they were the most. */
  liveMb: number;
  heapMb: number;
  buffersMb: number;
  /** How many collections were made. */
  samples: number;
}

/**
 * Runs `load` while collecting the isolate's garbage every `everyMs` and reading what is left
 * alive: what the gateway holds, which the resident set (mostly garbage not collected yet, and
 * memory the allocator keeps) cannot tell. Samples can miss a burst shorter than `everyMs`.
 */
export const mostAliveDuring = async <T>(
  inspector: Inspector,
  everyMs: number,
  load: () => Promise<T>,
): Promise<{ result: T; most: MostAlive }> => {
  const MB = 1024 * 1024;
  let done = false;
  const most: MostAlive = { liveMb: 0, heapMb: 0, buffersMb: 0, samples: 0 };
  const sampling = (async () => {
    while (!done) {
      const usage = await inspector.liveHeap();
      most.samples++;
      const [heapMb, buffersMb] = [usage.usedSize / MB, usage.backingStorageSize / MB];
      if (heapMb + buffersMb > most.liveMb) Object.assign(most, { liveMb: heapMb + buffersMb, heapMb, buffersMb });
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })();
  const result = await load().finally(() => (done = true));
  await sampling;
  return { result, most };
};
