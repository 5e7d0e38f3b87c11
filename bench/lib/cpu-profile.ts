/**
 * A V8 CPU profile of the gateway's isolate, taken through workerd's inspector (the Chrome
 * DevTools protocol), and a summary of where the samples fell.
 */
import { TraceMap, originalPositionFor } from "@jridgewell/trace-mapping";
import { readFileSync } from "node:fs";
import WebSocket from "ws";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber?: number };
  children?: number[];
}
/** The `Profiler.stop` result: open the saved file in Chrome DevTools or speedscope. */
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  startTime: number;
  endTime: number;
}

/** A Chrome DevTools protocol session with the isolate whose inspector title contains `worker`. */
const connectInspector = async (
  inspectorPort: number,
  worker: string,
): Promise<{ send<T>(method: string, params?: object): Promise<T>; close(): void }> => {
  const targets = (await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json()) as Array<{
    title: string;
    webSocketDebuggerUrl: string;
  }>;
  const target = targets.find(({ title }) => title.includes(worker));
  if (!target) throw new Error(`no inspector target for ${worker} (found: ${targets.map(({ title }) => title).join(", ")})`);
  const socket = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => socket.once("open", resolve).once("error", reject));
  let lastId = 0;
  const waiting = new Map<number, { resolve: (result: unknown) => void; reject: (error: Error) => void }>();
  socket.on("message", (data) => {
    const message = JSON.parse((Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer)).toString()) as {
      id?: number;
      result?: unknown;
      error?: { message: string };
    };
    const call = message.id === undefined ? undefined : waiting.get(message.id);
    if (!call || message.id === undefined) return;
    waiting.delete(message.id);
    if (message.error) call.reject(new Error(`inspector: ${message.error.message}`));
    else call.resolve(message.result);
  });
  return {
    send: <T>(method: string, params: object = {}) =>
      new Promise<T>((resolve, reject) => {
        const id = ++lastId;
        waiting.set(id, { resolve: resolve as (result: unknown) => void, reject });
        socket.send(JSON.stringify({ id, method, params }));
      }),
    close: () => socket.close(),
  };
};

/** Starts sampling the isolate whose inspector title contains `worker`; `stop` returns the profile. */
export const startCpuProfile = async (inspectorPort: number, worker: string): Promise<{ stop(): Promise<CpuProfile> }> => {
  const inspector = await connectInspector(inspectorPort, worker);
  await inspector.send("Profiler.enable");
  await inspector.send("Profiler.setSamplingInterval", { interval: 250 });
  await inspector.send("Profiler.start");
  return {
    async stop() {
      const { profile } = await inspector.send<{ profile: CpuProfile }>("Profiler.stop");
      inspector.close();
      return profile;
    },
  };
};

/** One node of V8's sampling heap profile: bytes allocated by a function itself, still alive or not. */
export interface AllocationNode {
  callFrame: ProfileNode["callFrame"];
  selfSize: number;
  children: AllocationNode[];
}

/**
 * Starts V8's sampling heap profiler on the isolate (every allocation past each `interval` bytes
 * is sampled with its stack); `stop` returns the tree of where the bytes were allocated. With
 * `includeObjectsCollectedByMajorGC`/`MinorGC`, what the collector already freed counts too:
 * the allocation rate, which is what makes young-generation collections frequent.
 */
export const startAllocationSampling = async (inspectorPort: number, worker: string): Promise<{ stop(): Promise<AllocationNode> }> => {
  const inspector = await connectInspector(inspectorPort, worker);
  await inspector.send("HeapProfiler.enable");
  await inspector.send("HeapProfiler.startSampling", {
    samplingInterval: 4096,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  return {
    async stop() {
      const { profile } = await inspector.send<{ profile: { head: AllocationNode } }>("HeapProfiler.stopSampling");
      inspector.close();
      return profile.head;
    },
  };
};

/** One line of a summary: a function and its share of the samples. */
export interface ProfileEntry {
  name: string;
  percent: number;
}

/**
 * Names for a profile's frames. The bundle is not minified, so V8's function names are the
 * source's; with the bundle's source map, a frame of the bundle (a `file:` URL; not workerd's
 * own `node-internal:` modules, whose lines the map knows nothing of) gets the file and line it
 * came from: a package's or the project's.
 */
const frameNames = (sourceMap: string | undefined) => {
  const map = sourceMap === undefined ? undefined : new TraceMap(sourceMap);
  const sources = new Map<string, { file: string; line: number } | undefined>();
  const source = (callFrame: ProfileNode["callFrame"]): { file: string; line: number } | undefined => {
    if (!map || !callFrame.url.startsWith("file:")) return undefined;
    const key = `${callFrame.url}:${callFrame.lineNumber}:${callFrame.columnNumber ?? 0}`;
    if (sources.has(key)) return sources.get(key);
    let found: { file: string; line: number } | undefined;
    const original = originalPositionFor(map, { line: callFrame.lineNumber + 1, column: Math.max(0, callFrame.columnNumber ?? 0) });
    if (original.source !== null) {
      const file = original.source
        .replace(/^.*node_modules\//, "")
        .replace(`${process.cwd()}/`, "")
        .replace(/^(\.\.\/)+/, "");
      found = { file, line: original.line ?? 0 };
    }
    sources.set(key, found);
    return found;
  };
  const shortUrl = (url: string) => (url.startsWith("node-internal:") ? url : (url.split("/").pop() ?? url));
  return {
    label: (callFrame: ProfileNode["callFrame"]): string => {
      const original = source(callFrame);
      if (original) return `${callFrame.functionName || "(anonymous)"} ${original.file}:${original.line}`;
      return `${callFrame.functionName || "(anonymous)"}${callFrame.url ? ` ${shortUrl(callFrame.url)}:${callFrame.lineNumber + 1}` : ""}`;
    },
    fileOf: (callFrame: ProfileNode["callFrame"]): string =>
      source(callFrame)?.file ?? (callFrame.url ? shortUrl(callFrame.url) : callFrame.functionName || "(native)"),
  };
};

/**
 * Where a sampling heap profile's bytes were allocated: by function (self) and by source file,
 * each as its share of all sampled bytes.
 */
export const summarizeAllocations = (
  head: AllocationNode,
  top = 25,
  sourceMap?: string,
): { total: number; self: Array<ProfileEntry & { bytes: number }>; files: Array<ProfileEntry & { bytes: number }> } => {
  const { label, fileOf } = frameNames(sourceMap);
  const self = new Map<string, number>();
  const files = new Map<string, number>();
  let total = 0;
  const visit = (node: AllocationNode) => {
    if (node.selfSize > 0) {
      total += node.selfSize;
      self.set(label(node.callFrame), (self.get(label(node.callFrame)) ?? 0) + node.selfSize);
      files.set(fileOf(node.callFrame), (files.get(fileOf(node.callFrame)) ?? 0) + node.selfSize);
    }
    for (const child of node.children) visit(child);
  };
  visit(head);
  const ranked = (bytes: Map<string, number>) =>
    [...bytes]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, count]) => ({ name, bytes: count, percent: (100 * count) / Math.max(1, total) }));
  return { total, self: ranked(self), files: ranked(files) };
};

/**
 * The functions with the most samples of their own (self) and under them (inclusive, counting a
 * function once per sample however deep its recursion), and the source files with the most
 * samples of their own (`files`). `(idle)` is the isolate waiting for the runtime: I/O, HTTP
 * parsing and calls between isolates happen outside JavaScript; `(program)` and unnamed frames
 * without a file are the runtime's own native work.
 *
 * With the bundle's source map, a frame of the bundle is named by the source it came from (a
 * package's or the project's file, function and line), not by its line in the bundle.
 */
export const summarizeProfile = (
  profile: CpuProfile,
  top = 25,
  sourceMap?: string,
): { self: ProfileEntry[]; inclusive: ProfileEntry[]; files: ProfileEntry[] } => {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parents = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id);
  const { label: frameLabel, fileOf: frameFile } = frameNames(sourceMap);
  const label = (node: ProfileNode) => frameLabel(node.callFrame);
  const fileOf = (node: ProfileNode) => frameFile(node.callFrame);

  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const files = new Map<string, number>();
  for (const sample of profile.samples) {
    const leaf = nodes.get(sample);
    if (!leaf) continue;
    self.set(label(leaf), (self.get(label(leaf)) ?? 0) + 1);
    files.set(fileOf(leaf), (files.get(fileOf(leaf)) ?? 0) + 1);
    const seen = new Set<string>();
    for (let id: number | undefined = sample; id !== undefined; id = parents.get(id)) {
      const node = nodes.get(id);
      if (!node) break;
      const name = label(node);
      if (seen.has(name)) continue;
      seen.add(name);
      inclusive.set(name, (inclusive.get(name) ?? 0) + 1);
    }
  }
  inclusive.delete("(root)");
  const ranked = (counts: Map<string, number>) =>
    [...counts]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, count]) => ({ name, percent: (100 * count) / Math.max(1, profile.samples.length) }));
  return { self: ranked(self), inclusive: ranked(inclusive), files: ranked(files) };
};

/** CPU seconds a process has used so far (user and system), from /proc. */
export const cpuSeconds = (pid: number): number => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  // utime and stime, in clock ticks of 1/100 s (USER_HZ on Linux).
  return (Number(fields[11]) + Number(fields[12])) / 100;
};
