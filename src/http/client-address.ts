/**
 * The client's address as the Node and Deno servers saw it, by request. Deployed, Cloudflare
 * sets `CF-Connecting-IP` on every request (a client cannot), but a server of our own is reached
 * directly: there the header is the client's to forge, and only the socket's address counts.
 */
export const clientAddresses = new WeakMap<Request, string>();
