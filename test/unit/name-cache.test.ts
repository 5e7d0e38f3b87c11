import { describe, expect, it } from "vitest";
import { NameCache } from "../../src/name-cache";

describe("NameCache: bounded memory of broker names", () => {
  it("drops the least recently used name first, a get counting as a use", () => {
    const cache = new NameCache<number>(2);
    cache.set("a", 1);
    cache.set("b", 2);
    expect(cache.get("a")).toBe(1);
    expect(cache.get("a")).toBe(1);
    cache.set("c", 3);
    expect(cache.get("b")).toBeUndefined();
    expect(cache.get("a")).toBe(1);
    expect(cache.get("c")).toBe(3);
    // c was used last: a goes next.
    cache.set("d", 4);
    expect(cache.get("a")).toBeUndefined();
    expect(cache.size).toBe(2);
  });

  it("keeps the order right when the newest name is deleted or expires", () => {
    const cache = new NameCache<number>(2, 1000);
    cache.set("a", 1, 0);
    cache.set("b", 2, 0);
    cache.delete("b");
    cache.set("c", 3, 0);
    // a is the oldest now, whatever b was.
    expect(cache.get("a", 10)).toBe(1);
    cache.set("d", 4, 10);
    expect(cache.get("c", 10)).toBeUndefined();
    // d was the newest, and a (used at 10 but set at 0) and d expire together.
    expect(cache.get("d", 1010)).toBeUndefined();
    expect(cache.get("a", 1010)).toBeUndefined();
    expect(cache.size).toBe(0);
    cache.set("e", 5, 1010);
    cache.set("f", 6, 1010);
    expect(cache.get("e", 1010)).toBe(5);
    cache.set("g", 7, 1010);
    expect(cache.get("f", 1010)).toBeUndefined();
    expect(cache.get("e", 1010)).toBe(5);
  });
});
