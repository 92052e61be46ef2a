"""The worker pool's registry in Redis: workers announce themselves, media nodes place calls on them.

Keys (``prefix`` defaults to ``voiceagent:pool:``; see docs/workers.md)::

    {prefix}workers                     set     ids of workers that announced themselves
    {prefix}worker:{id}                 hash    url, capacity, active, draining, engine; expires after ttl
    {prefix}worker:{id}:reserved        zset    placement tokens not yet claimed, scored by expiry (ms)

A worker's heartbeat rewrites its hash and restarts its TTL, so a worker that dies vanishes from
placement within ``ttl_s``. ``active`` is written only by the worker (its own count of open
sessions). A placement is one Lua script: it picks the live, non-draining worker with the most free
slots (capacity − active − unexpired reservations) and reserves one slot with a token, all at once,
so two media nodes can never both take a worker's last slot. The worker claims the token when the
connection arrives; a token nobody claims (the media node died) expires by itself.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from voiceagent.errors import NoWorkerError

__all__ = ["Placement", "WorkerInfo", "WorkerRegistry", "WorkerStatus"]

# KEYS[1]: the set of worker ids. ARGV: prefix, token, reservation ms, excluded ids...
# Returns {id, url} or nil. Reads worker hashes not named in KEYS: fine on one Redis, not on a cluster.
_PLACE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local excluded = {}
for i = 4, #ARGV do excluded[ARGV[i]] = true end
local best, best_free, best_url = nil, 0, nil
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[1] .. 'worker:' .. id
  local f = redis.call('HMGET', key, 'url', 'capacity', 'active', 'draining')
  if not f[1] then
    redis.call('SREM', KEYS[1], id)
  elseif not excluded[id] and f[4] ~= '1' then
    local reserved = key .. ':reserved'
    redis.call('ZREMRANGEBYSCORE', reserved, '-inf', now)
    local free = tonumber(f[2]) - tonumber(f[3] or '0') - redis.call('ZCARD', reserved)
    if free > best_free then
      best, best_free, best_url = id, free, f[1]
    end
  end
end
if not best then return nil end
local reserved = ARGV[1] .. 'worker:' .. best .. ':reserved'
redis.call('ZADD', reserved, now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', reserved, tonumber(ARGV[3]) * 2)
return {best, best_url}
"""


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker announces about itself."""

    id: str
    url: str
    capacity: int
    engine: str


@dataclass(frozen=True)
class WorkerStatus:
    """A worker as the registry sees it now."""

    id: str
    url: str
    capacity: int
    active: int
    reserved: int
    draining: bool
    engine: str


@dataclass(frozen=True)
class Placement:
    """A reserved slot: connect to ``url`` passing ``token`` as the ``placement`` query parameter."""

    worker_id: str
    url: str
    token: str


class WorkerRegistry:
    """Both sides of the registry: :meth:`announce`/:meth:`claim` for workers, :meth:`place` for media."""

    def __init__(
        self, url: str, *, prefix: str = "voiceagent:pool:", ttl_s: float = 3.0, reservation_s: float = 10.0
    ) -> None:
        self._redis: aioredis.Redis = aioredis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._prefix = prefix
        self._ttl_ms = int(ttl_s * 1000)
        self._reservation_ms = int(reservation_s * 1000)
        self._place = self._redis.register_script(_PLACE)

    def _key(self, worker_id: str) -> str:
        return f"{self._prefix}worker:{worker_id}"

    @contextlib.asynccontextmanager
    async def _translate(self, operation: str) -> AsyncIterator[None]:
        try:
            yield
        except RedisError as exc:
            raise NoWorkerError(f"worker registry: {operation} failed: {exc}") from exc

    # ---- the worker's side ------------------------------------------------------------------------

    async def announce(self, info: WorkerInfo, *, active: int, draining: bool) -> None:
        """Heartbeat: write the worker's entry and restart its TTL."""
        key = self._key(info.id)
        fields: list[str | int] = ["url", info.url, "capacity", info.capacity, "active", active]
        fields += ["draining", int(draining), "engine", info.engine]
        async with self._translate("announce"), self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, items=fields)
            pipe.pexpire(key, self._ttl_ms)
            pipe.sadd(f"{self._prefix}workers", info.id)
            await pipe.execute()

    async def claim(self, worker_id: str, token: str | None, *, active: int) -> None:
        """A placed session arrived: drop its reservation and count it, in one step."""
        async with self._translate("claim"), self._redis.pipeline(transaction=True) as pipe:
            if token:
                pipe.zrem(f"{self._key(worker_id)}:reserved", token)
            pipe.hset(self._key(worker_id), "active", active)
            await pipe.execute()

    async def set_active(self, worker_id: str, active: int) -> None:
        """A session ended: free its slot at once instead of at the next heartbeat."""
        async with self._translate("set_active"):
            await self._redis.hset(self._key(worker_id), "active", active)

    async def withdraw(self, worker_id: str) -> None:
        """Remove the worker's entry (clean shutdown)."""
        async with self._translate("withdraw"):
            key = self._key(worker_id)
            await self._redis.delete(key, f"{key}:reserved")
            await self._redis.srem(f"{self._prefix}workers", worker_id)

    # ---- the media node's side --------------------------------------------------------------------

    async def place(self, *, exclude: Sequence[str] = ()) -> Placement:
        """Reserve a slot on the least-loaded live worker; :class:`NoWorkerError` if none has one."""
        token = uuid.uuid4().hex
        async with self._translate("place"):
            found = await self._place(
                keys=[f"{self._prefix}workers"], args=[self._prefix, token, self._reservation_ms, *exclude]
            )
        if not found:
            raise NoWorkerError("no worker can take the call: all are full, draining or down")
        worker_id, url = (_text(v) for v in found)
        return Placement(worker_id, url, token)

    async def release(self, placement: Placement) -> None:
        """Give back a reservation that will not be used (the connection failed)."""
        async with self._translate("release"):
            await self._redis.zrem(f"{self._key(placement.worker_id)}:reserved", placement.token)

    async def workers(self) -> list[WorkerStatus]:
        """Every live worker, by id."""
        async with self._translate("workers"):
            ids = sorted(_text(v) for v in await self._redis.smembers(f"{self._prefix}workers"))
            rows: list[WorkerStatus] = []
            for worker_id in ids:
                raw = await self._redis.hgetall(self._key(worker_id))
                data = {_text(k): _text(v) for k, v in raw.items()}
                if not data:
                    continue
                reserved = await self._redis.zcard(f"{self._key(worker_id)}:reserved")
                rows.append(
                    WorkerStatus(
                        id=worker_id,
                        url=data["url"],
                        capacity=int(data["capacity"]),
                        active=int(data.get("active", 0)),
                        reserved=int(reserved),
                        draining=data.get("draining") == "1",
                        engine=data.get("engine", ""),
                    )
                )
        return rows

    async def aclose(self) -> None:
        await self._redis.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
