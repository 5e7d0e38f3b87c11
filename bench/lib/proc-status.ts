import { readFileSync } from "node:fs";

/** A process's memory figure from /proc/<pid>/status in MB: its resident set now (VmRSS) or at its peak (VmHWM); NaN without a process. */
export const procStatusMb = (pid: number | undefined, field: "VmRSS" | "VmHWM"): number => {
  if (!pid) return Number.NaN;
  const kb = Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? Number.NaN);
  return kb / 1024;
};

/** Its resident set now, in MB. */
export const rssMb = (pid: number | undefined): number => procStatusMb(pid, "VmRSS");
