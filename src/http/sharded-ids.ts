/**
 * An id as clients see it: `<shard>.<uuid>`, for what lives in one shard's object (a lease, an
 * async reply), so the id says which object to ask.
 */
export const shardedId = (shard: number, id: string): string => `${shard}.${id}`;

/** The shard and the object's own id of an id a client sent, or undefined when it cannot be one. */
export const parseShardedId = (sharded: string, shards: number): { shard: number; id: string } | undefined => {
  const match = /^(0|[1-9][0-9]?)\.([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/.exec(sharded);
  if (!match) return undefined;
  const shard = Number(match[1]);
  return shard < shards ? { shard, id: match[2] ?? "" } : undefined;
};
