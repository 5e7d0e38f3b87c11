/** W3C traceparent: which the gateway passes on, and the ones it starts. */
import { describe, expect, it } from "vitest";
import { canonicalTraceparent, isPassableTracestate, traceContextOf, traceIdOf } from "../../src/contract/trace-context";

const ID = "4bf92f3577b34da6a3ce929d0e0e4736";

describe("a traceparent", () => {
  it("is passed on when valid (version 00 exactly, later versions with more fields)", () => {
    expect(traceIdOf(`00-${ID}-00f067aa0ba902b7-01`)).toBe(ID);
    expect(traceIdOf(`01-${ID}-00f067aa0ba902b7-01-whatever`)).toBe(ID);
  });

  it("is passed on as its first 55 characters: a later version's extra fields (any bytes, any length) are dropped", () => {
    for (const tail of ["-€", "-\u0000", "-\r\nx: y", `-${"a".repeat(60_000)}`]) {
      expect(canonicalTraceparent(`01-${ID}-00f067aa0ba902b7-01${tail}`)).toBe(`01-${ID}-00f067aa0ba902b7-01`);
    }
    expect(canonicalTraceparent(`01-${ID}-00f067aa0ba902b7-01x`)).toBeUndefined();
    expect(traceContextOf(`01-${ID}-00f067aa0ba902b7-01-${"a".repeat(100)}`, undefined).traceparent).toHaveLength(55);
  });

  it("is refused when malformed: upper case, zero ids, version ff, extra fields on 00, wrong lengths", () => {
    for (const bad of [
      `00-${ID.toUpperCase()}-00f067aa0ba902b7-01`,
      `00-${"0".repeat(32)}-00f067aa0ba902b7-01`,
      `00-${ID}-0000000000000000-01`,
      `ff-${ID}-00f067aa0ba902b7-01`,
      `00-${ID}-00f067aa0ba902b7-01-extra`,
      `00-${ID}-00f067aa0ba902b-01`,
      "garbage",
      "",
    ]) {
      expect(traceIdOf(bad), bad).toBeUndefined();
    }
  });

  it("is started by the gateway (valid, sampled, new ids each time) when the request has none or a bad one, dropping its tracestate", () => {
    const started = traceContextOf(undefined, "vendor=1");
    expect(started.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(traceIdOf(started.traceparent)).toBe(started.traceId);
    expect(started.tracestate).toBeUndefined();
    expect(traceContextOf("bad", undefined).traceId).not.toBe(started.traceId);
    expect(traceContextOf(`00-${ID}-00f067aa0ba902b7-01`, "vendor=1")).toEqual({
      traceparent: `00-${ID}-00f067aa0ba902b7-01`,
      traceId: ID,
      tracestate: "vendor=1",
    });
  });

  it("passes on a tracestate of printable ASCII up to 512 characters only", () => {
    expect(isPassableTracestate("a=1,b=2")).toBe(true);
    expect(isPassableTracestate("x".repeat(513))).toBe(false);
    expect(isPassableTracestate("a=1\r\nx: y")).toBe(false);
    expect(isPassableTracestate("a=é")).toBe(false);
  });
});
