import { describe, expect, it } from "vitest";
import { splitBatch } from "../../src/http/batch-body";
import { GatewayError } from "../../src/http/gateway-error";

const encoder = new TextEncoder();
const bytesOf = (text: string): Uint8Array => encoder.encode(text);
const bodyOf = (body: string | Uint8Array): ArrayBuffer => {
  const bytes = typeof body === "string" ? bytesOf(body) : body;
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
};

const split = (body: string | Uint8Array, contentType = "application/json", maxBatch = 1000) =>
  splitBatch(bodyOf(body), contentType, maxBatch, "route");

/** The messages of a batch, each as its bytes. */
const messages = (body: string | Uint8Array, contentType?: string, maxBatch?: number): Uint8Array[] => {
  const batch = split(body, contentType, maxBatch);
  if (batch === null) throw new Error("not a batch");
  return batch.map((element) => new Uint8Array(element));
};

/** The error splitting throws, as its status and message. */
const refusal = (body: string | Uint8Array, contentType?: string, maxBatch?: number) => {
  try {
    split(body, contentType, maxBatch);
  } catch (error) {
    if (!(error instanceof GatewayError)) throw error;
    return { status: error.status, message: error.message };
  }
  throw new Error("not refused");
};

const ndjson = "application/x-ndjson";

describe("a JSON array body", () => {
  it("publishes each element's bytes as sent, numbers that do not fit a double included", () => {
    expect(messages("[12345678901234567890, 1e400, -0.10, 1E+2]")).toEqual(["12345678901234567890", "1e400", "-0.10", "1E+2"].map(bytesOf));
  });

  it("keeps duplicate keys and escapes", () => {
    expect(messages('[{"a":1,"a":2},"\\u00e9\\/"]')).toEqual([bytesOf('{"a":1,"a":2}'), bytesOf('"\\u00e9\\/"')]);
  });

  it("keeps whitespace and newlines inside an element, and trims only around it", () => {
    expect(messages('[\n  { "a" : [ 1,\r\n 2 ] } ,\t"x y"  \n]')).toEqual([bytesOf('{ "a" : [ 1,\r\n 2 ] }'), bytesOf('"x y"')]);
  });

  it("splits only at top-level commas, past brackets and escaped quotes inside strings", () => {
    expect(messages('[["a,]b", {"k": "\\"],"}], {"x": [1, {"y": "}"}]}, "\\\\", "a,]b", "\\"],"]')).toEqual(
      ['["a,]b", {"k": "\\"],"}]', '{"x": [1, {"y": "}"}]}', '"\\\\"', '"a,]b"', '"\\"],"'].map(bytesOf),
    );
  });

  it("publishes invalid UTF-8 inside a string byte for byte", () => {
    const element = [0x22, 0xff, 0xc3, 0x28, 0x80, 0x22]; // "\xff\xc3(\x80"
    const body = new Uint8Array([0x5b, ...element, 0x2c, 0x31, 0x5d]); // [<element>,1]
    expect(messages(body)).toEqual([new Uint8Array(element), bytesOf("1")]);
  });

  it("publishes multi-byte UTF-8 unchanged", () => {
    expect(messages('["é", "日本", "😀"]')).toEqual(['"é"', '"日本"', '"😀"'].map(bytesOf));
  });

  it("is a batch after whitespace before the [ and with whitespace after the ]", () => {
    expect(messages(" \r\n\t[1,2]\n ")).toEqual([bytesOf("1"), bytesOf("2")]);
  });

  it("is a batch with a charset parameter", () => {
    expect(messages("[1]", "Application/JSON; charset=utf-8")).toEqual([bytesOf("1")]);
  });

  it("returns element buffers of exactly the element's length", () => {
    const batch = split('[ "a" , 22 ]');
    expect(batch?.map((element) => element.byteLength)).toEqual([3, 2]);
  });

  it("is one message when the JSON body is not an array", () => {
    expect(split('{"not":"a batch"}')).toBeNull();
    expect(split("  42")).toBeNull();
    expect(split("")).toBeNull();
    expect(split("[1,2]", "text/plain")).toBeNull();
  });

  it("refuses an empty array", () => {
    expect(refusal("[]")).toEqual({ status: 400, message: "the batch holds no messages" });
    expect(refusal(" [ \n ] ")).toEqual({ status: 400, message: "the batch holds no messages" });
  });

  it("refuses a trailing comma", () => {
    expect(refusal("[1,2,]")).toEqual({
      status: 400,
      message: "a trailing comma (byte offset 4) follows the last element of the JSON array; nothing was published",
    });
  });

  it("refuses an empty element", () => {
    expect(refusal("[1,,2]")).toEqual({
      status: 400,
      message: "the element at index 1 of the JSON array is empty (byte offset 3); nothing was published",
    });
    expect(refusal("[,1]").message).toBe("the element at index 0 of the JSON array is empty (byte offset 1); nothing was published");
  });

  it("refuses a missing comma, between scalars and between other values", () => {
    expect(refusal("[1 2]")).toEqual({
      status: 400,
      message: "a comma is missing after the element at index 0 of the JSON array (byte offset 3); nothing was published",
    });
    expect(refusal('[1, {"a":1}{"b":2}]').message).toBe(
      "a comma is missing after the element at index 1 of the JSON array (byte offset 11); nothing was published",
    );
    expect(refusal('["a" "b"]').status).toBe(400);
    expect(refusal('[1"a"]').status).toBe(400);
  });

  it("refuses trailing garbage after the closing ]", () => {
    expect(refusal("[1,2] x")).toEqual({
      status: 400,
      message: 'the body goes on after the JSON array\'s closing "]" (byte offset 6); nothing was published',
    });
    expect(refusal("[1]]").status).toBe(400);
    expect(refusal("[1][2]").status).toBe(400);
  });

  it("refuses unbalanced brackets and an array that is not closed", () => {
    expect(refusal("[1,2")).toEqual({
      status: 400,
      message: "the JSON array is not closed: the body ends at byte offset 4 inside the element at index 1; nothing was published",
    });
    expect(refusal("[1,").message).toBe("the JSON array is not closed: the body ends at byte offset 3; nothing was published");
    expect(refusal('["a]').status).toBe(400);
    expect(refusal("[[1,2]").status).toBe(400);
    expect(refusal("[1}").message).toBe('a "}" at byte offset 2 of the JSON array closes no object; nothing was published');
    expect(refusal("[[1}]").message).toBe(
      "the element at index 0 (byte offset 1) of the JSON array is not valid JSON; nothing was published",
    );
  });

  it("refuses an element that is not valid JSON, naming it", () => {
    expect(refusal("[1, tru, 3]")).toEqual({
      status: 400,
      message: "the element at index 1 (byte offset 4) of the JSON array is not valid JSON; nothing was published",
    });
    expect(refusal("[01]").status).toBe(400);
    expect(refusal("[{'a':1}]").status).toBe(400);
    expect(refusal('["tab\there"]').status).toBe(400);
    expect(refusal(new Uint8Array([0x5b, 0xff, 0x5d])).status).toBe(400); // invalid UTF-8 outside a string
    expect(refusal(new Uint8Array([0x5b, 0xef, 0xbb, 0xbf, 0x31, 0x5d])).status).toBe(400); // a BOM before an element
  });

  it("refuses more than max_batch elements with a 413", () => {
    expect(messages("[1,2]", "application/json", 2)).toHaveLength(2);
    expect(refusal("[1,2,3]", "application/json", 2)).toEqual({
      status: 413,
      message: "the batch holds more than 2 messages (amqp.producer.max_batch); nothing was published",
    });
  });

  it("refuses a huge batch without splitting all of it", () => {
    const body = bytesOf(`[${"1,".repeat(1_000_000)}1]`);
    expect(refusal(body, "application/json", 10).status).toBe(413);
    // Stops at element 11: what comes after, even malformed, is never looked at.
    expect(refusal(`[${"1,".repeat(11)} oops`, "application/json", 10).status).toBe(413);
  });
});

describe("an NDJSON body", () => {
  it("publishes each line's bytes as sent, with LF or CRLF line endings", () => {
    expect(messages('{"n":12345678901234567890}\r\n{"a":1,"a":2}\n"\\u00e9"', ndjson)).toEqual(
      ['{"n":12345678901234567890}', '{"a":1,"a":2}', '"\\u00e9"'].map(bytesOf),
    );
  });

  it("skips blank lines, empty or only whitespace", () => {
    expect(messages('\n{"n":1}\n\n  \t\r\n\r\n{"n":2}\n', ndjson)).toEqual([bytesOf('{"n":1}'), bytesOf('{"n":2}')]);
  });

  it("keeps whitespace around a line's JSON", () => {
    expect(messages(' {"n":1} \n', ndjson)).toEqual([bytesOf(' {"n":1} ')]);
  });

  it("publishes invalid UTF-8 inside a string byte for byte", () => {
    const line = [0x22, 0xff, 0xfe, 0x22];
    expect(messages(new Uint8Array([...line, 0x0a, 0x31]), ndjson)).toEqual([new Uint8Array(line), bytesOf("1")]);
  });

  it("refuses a line that is not valid JSON, naming its line number", () => {
    expect(refusal('{"n":1}\n\n{"n":\n{"n":4}', ndjson)).toEqual({
      status: 400,
      message: "line 3 of the NDJSON body is not valid JSON; nothing was published",
    });
    expect(refusal("1\r\n\r\n2 3\r\n", ndjson).message).toBe("line 3 of the NDJSON body is not valid JSON; nothing was published");
    expect(refusal("[1,2]\nnot json", ndjson).message).toBe("line 2 of the NDJSON body is not valid JSON; nothing was published");
  });

  it("refuses a body of blank lines only", () => {
    expect(refusal("\n \r\n", ndjson)).toEqual({ status: 400, message: "the batch holds no messages" });
    expect(refusal("", ndjson).status).toBe(400);
  });

  it("refuses more than max_batch lines with a 413", () => {
    expect(messages("1\n2\n\n", ndjson, 2)).toHaveLength(2);
    expect(refusal("1\n2\n3\n", ndjson, 2)).toEqual({
      status: 413,
      message: "the batch holds more than 2 messages (amqp.producer.max_batch); nothing was published",
    });
  });
});

describe("a byte order mark", () => {
  it("before a JSON array is a 400, as it is before NDJSON, rather than one message that is not JSON", () => {
    const body = new Uint8Array([0xef, 0xbb, 0xbf, ...bytesOf("[1,2]")]);
    expect(refusal(body)).toMatchObject({ status: 400, message: expect.stringMatching(/byte order mark/) });
    expect(refusal(body, ndjson)).toMatchObject({ status: 400 });
  });
});
