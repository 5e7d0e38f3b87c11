/** `GET /openapi.json` inside workerd: public by default, behind the admin token with `admin.openapi: private`. */
import { describe, expect, it } from "vitest";
import { BROKER_URL } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";

const routes = (admin: string) => `${admin}
routes:
  - { id: ${uniqueRouteId("api")}, path: /in, amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: q } } }
`;

describe("GET /openapi.json", () => {
  it("is public by default, with the request's origin as its server", async () => {
    const answer = await gatewayFor(routes(""), { ADMIN_TOKEN: "t" })("GET", "/openapi.json");
    expect(answer.status).toBe(200);
    const document = (await answer.json()) as { openapi: string; servers: Array<{ url: string }>; paths: Record<string, unknown> };
    expect(document.openapi).toBe("3.1.0");
    expect(document.servers).toEqual([{ url: "http://gateway.test" }]);
    expect(Object.keys(document.paths)).toContain("/in");
  });

  it("needs the admin token with admin.openapi: private", async () => {
    const send = gatewayFor(routes("admin: { openapi: private }"), { ADMIN_TOKEN: "t" });
    expect((await send("GET", "/openapi.json")).status).toBe(401);
    expect((await send("GET", "/openapi.json", { headers: { authorization: "Bearer t" } })).status).toBe(200);
  });
});
