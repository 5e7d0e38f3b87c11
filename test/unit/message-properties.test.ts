/**
 * The limits on message properties counted as the broker counts them: in UTF-8 bytes. (Here rather
 * than in workerd, which warns on every non-ASCII request header a test builds.)
 */
import { describe, expect, it } from "vitest";
import { GatewayError } from "../../src/http/gateway-error";
import { publishProperties } from "../../src/http/message-properties";

const refusal = (headers: Record<string, string>) => {
  try {
    publishProperties(new Headers(headers), "r");
  } catch (error) {
    if (error instanceof GatewayError) return { status: error.status, message: error.message };
    throw error;
  }
  return undefined;
};

describe("a short-string property", () => {
  it("of 128 characters but 256 bytes in UTF-8 is over the 255-byte limit", () => {
    expect(refusal({ "x-correlation-id": "é".repeat(128) })).toEqual({
      status: 400,
      message: "header x-correlation-id: must be at most 255 bytes",
    });
  });

  it("of 127 such characters (254 bytes) fits", () => {
    expect(refusal({ "x-correlation-id": "é".repeat(127) })).toBeUndefined();
  });
});
