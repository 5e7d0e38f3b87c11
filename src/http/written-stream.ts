/**
 * A response body whose writes complete only once the runtime has taken the bytes to send them,
 * so that "written" can decide whether a message is acknowledged. workerd's identity streams hold
 * no chunk of their own (`FixedLengthStream` also sets Content-Length); elsewhere (Node, Deno) a
 * TransformStream whose readable side holds nothing does the same, and the caller sets
 * Content-Length itself when it knows it ({@link setsLength}).
 */
export const writtenStream = (length?: number): ReadableWritablePair<Uint8Array, Uint8Array> => {
  if (IN_WORKERD) return length === undefined ? new IdentityTransformStream() : new FixedLengthStream(length);
  return new TransformStream<Uint8Array, Uint8Array>(undefined, { highWaterMark: 1 }, { highWaterMark: 0 });
};

/** Whether {@link writtenStream} of a known length sets Content-Length itself. */
export const setsLength = (): boolean => IN_WORKERD;

const IN_WORKERD = typeof IdentityTransformStream === "function";
