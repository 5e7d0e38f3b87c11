/**
 * A page served from the gateway's own origin, inside workerd: browsers send no `Origin` on its
 * same-origin GETs (and EventSource), only `Sec-Fetch-Site: same-origin`. Such a request is the
 * page's own origin calling, that origin being the request URL's scheme and `Host`: accepted when
 * the route's `cors.allow_origins` lists it, refused (403) when it does not, which is what keeps
 * out a DNS-rebinding page (`Host: evil.example`, same-origin to the browser). A page on another
 * site that sends no `Origin` (an `<img>`) is still refused.
 */
import { describe, expect, it } from "vitest";
import { BROKER_URL, messageCount, publishDirect, withQueue } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";

type ErrorBody = { error: string; route: string | null };

/** The origin every request of gatewayFor has: http://gateway.test. */
const OWN_ORIGIN = "http://gateway.test";
const SAME_ORIGIN = { "sec-fetch-site": "same-origin", "sec-fetch-mode": "cors" };

/** A route that publishes on POST and consumes on GET, both to `queue`, with `access` (YAML flow entries). */
const route = (id: string, queue: string, access: string) =>
  `  - { id: ${id}, path: /jobs, ${access}, amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue} }, consumer: { queue: ${queue}, auto_ack: true } } }\n`;

describe("a page on the gateway's own origin, listed in cors.allow_origins", () => {
  it("consumes with a same-origin GET that carries no Origin, and publishes with its same-origin POST", () =>
    withQueue("own-origin", async (queue) => {
      const id = uniqueRouteId("own-origin");
      const send = gatewayFor(`routes:\n${route(id, queue, `cors: { allow_origins: ["https://app.example.com", "${OWN_ORIGIN}"] }`)}`);
      // What Chromium sends: Origin on the POST, none on the GET.
      const posted = await send("POST", "/jobs", { body: "from my own page", headers: { ...SAME_ORIGIN, origin: OWN_ORIGIN } });
      expect(posted.status).toBe(202);
      const got = await send("GET", "/jobs", { headers: SAME_ORIGIN });
      expect(got.status).toBe(200);
      expect(await got.text()).toBe("from my own page");
      // A same-origin request needs no CORS headers, and gets no Access-Control-Allow-Origin for an Origin it did not send.
      expect(got.headers.get("access-control-allow-origin")).toBeNull();
    }));

  it("is told apart by scheme and port: https://gateway.test and http://gateway.test:8080 are other origins", () =>
    withQueue("own-origin-port", async (queue) => {
      await publishDirect(queue, "stays");
      const id = uniqueRouteId("own-origin-port");
      const send = gatewayFor(`routes:\n${route(id, queue, `cors: { allow_origins: ["https://gateway.test"] }`)}`);
      expect((await send("GET", "/jobs", { headers: SAME_ORIGIN })).status).toBe(403);
      expect((await send("GET", "http://gateway.test:8080/jobs", { headers: SAME_ORIGIN })).status).toBe(403);
      expect(await messageCount(queue)).toBe(1);
      // The listed one: the request's URL is https://gateway.test.
      const listed = await send("GET", "https://gateway.test/jobs", { headers: SAME_ORIGIN });
      expect(listed.status).toBe(200);
      expect(await listed.text()).toBe("stays");
    }));
});

describe("a page request the route's cors does not let in", () => {
  it("is refused on the gateway's own origin when cors does not list it, and takes nothing", () =>
    withQueue("unlisted-own", async (queue) => {
      await publishDirect(queue, "not for an unlisted page");
      const listsOthers = uniqueRouteId("lists-others");
      const noCors = uniqueRouteId("no-cors");
      const send = gatewayFor(
        `routes:\n${route(listsOthers, queue, 'cors: { allow_origins: ["https://app.example.com"] }')}` +
          route(noCors, queue, "cors: none").replace("/jobs", "/bare"),
      );
      const refused = await send("GET", "/jobs", { headers: SAME_ORIGIN });
      expect(refused.status).toBe(403);
      expect(await refused.json()).toEqual({ error: expect.stringContaining(`a page of ${OWN_ORIGIN}`), route: listsOthers });
      const bare = await send("GET", "/bare", { headers: SAME_ORIGIN });
      expect(bare.status).toBe(403);
      expect(((await bare.json()) as ErrorBody).route).toBe(noCors);
      expect((await send("POST", "/bare", { body: "x", headers: { ...SAME_ORIGIN, origin: OWN_ORIGIN } })).status).toBe(403);
      expect(await messageCount(queue)).toBe(1);
    }));

  it("is refused from a DNS-rebinding page: same-origin to the browser, but its Host is not a listed origin", () =>
    withQueue("rebinding", async (queue) => {
      await publishDirect(queue, "not for evil.example");
      const id = uniqueRouteId("rebinding");
      const send = gatewayFor(`routes:\n${route(id, queue, `cors: { allow_origins: ["${OWN_ORIGIN}"] }`)}`);
      // evil.example resolves to the gateway's address: the browser sends Host: evil.example and calls it same-origin.
      const get = await send("GET", "http://evil.example/jobs", { headers: SAME_ORIGIN });
      expect(get.status).toBe(403);
      expect(await get.json()).toEqual({ error: expect.stringContaining("http://evil.example"), route: id });
      expect(
        (await send("POST", "http://evil.example/jobs", { body: "x", headers: { ...SAME_ORIGIN, origin: "http://evil.example" } })).status,
      ).toBe(403);
      expect(await messageCount(queue)).toBe(1);
    }));

  it("is refused from a page of another site that sends no Origin (an <img>, a link), even when the gateway's origin is listed", () =>
    withQueue("cross-site-no-origin", async (queue) => {
      await publishDirect(queue, "not for an img");
      const id = uniqueRouteId("img");
      const send = gatewayFor(`routes:\n${route(id, queue, `cors: { allow_origins: ["${OWN_ORIGIN}"] }`)}`);
      for (const site of ["cross-site", "same-site"]) {
        expect((await send("GET", "/jobs", { headers: { "sec-fetch-site": site, "sec-fetch-mode": "no-cors" } })).status).toBe(403);
      }
      expect(await messageCount(queue)).toBe(1);
      // Requests from no page at all (curl; a URL typed into the address bar) are not affected.
      expect((await send("GET", "/jobs", { headers: { "sec-fetch-site": "none" } })).status).toBe(200);
    }));
});
