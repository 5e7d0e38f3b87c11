/**
 * A lease id as clients see it: `<shard>.<uuid>`. A lease lives in the object of the shard that
 * handed its message out, so the id says which one to settle it with.
 */
export const externalLeaseId = (shard: number, id: string): string => `${shard}.${id}`;

/** The shard and the object's own id of a lease id a client sent, or undefined when it cannot be one. */
export const parseLeaseId = (leaseId: string, shards: number): { shard: number; id: string } | undefined => {
  const match = /^(0|[1-9][0-9]?)\.([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/.exec(leaseId);
  if (!match) return undefined;
  const shard = Number(match[1]);
  return shard < shards ? { shard, id: match[2] ?? "" } : undefined;
};
