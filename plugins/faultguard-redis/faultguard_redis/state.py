"""The `redis` breaker state store: one hash per breaker, changed by Lua scripts.

Each method is one Lua script, which Redis runs atomically, so replicas
never both take the last probe slot and no lock is held while a call runs.
Time is Redis `TIME`, so replicas with skewed clocks agree on when an open
period ends. The rules are those of `faultguard_core.storage.transitions`;
keep the two in step.
"""

from __future__ import annotations

import contextlib
from typing import Any

from redis.exceptions import RedisError

from faultguard_core.errors import StorageError
from faultguard_core.storage.base import (
    Admission,
    BreakerPolicy,
    BreakerRecord,
    BreakerStateStore,
    RecordResult,
    SharedBreakerState,
    SharedOutcome,
)

IDLE_EXPIRY_SECONDS = 7 * 24 * 3600
"""A breaker hash not written for this long is deleted, so per-origin keys do
not accumulate. A deleted breaker starts closed with no failures counted."""

# Loads the row of KEYS[1] and defines transition(), refresh() and save().
_PRELUDE = """
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local h = redis.call('HMGET', KEYS[1], 'state', 'gen', 'failures', 'open_until',
  'in_flight', 'successes', 'probe_deadline')
local row = {
  state = h[1] or 'closed',
  gen = tonumber(h[2] or '0'),
  failures = tonumber(h[3] or '0'),
  open_until = tonumber(h[4] or '0'),
  in_flight = tonumber(h[5] or '0'),
  successes = tonumber(h[6] or '0'),
  probe_deadline = tonumber(h[7] or '0'),
}
local function transition(new, opened_for)
  row.state = new
  row.gen = row.gen + 1
  row.failures = 0
  row.in_flight = 0
  row.successes = 0
  row.probe_deadline = 0
  if new == 'open' then row.open_until = now + opened_for else row.open_until = 0 end
end
local function refresh()
  if row.state == 'open' and now >= row.open_until then
    transition('half_open', 0)
    return 'open'
  end
  return ''
end
local function save()
  redis.call('HSET', KEYS[1], 'state', row.state, 'gen', row.gen,
    'failures', row.failures, 'open_until', string.format('%.6f', row.open_until),
    'in_flight', row.in_flight, 'successes', row.successes,
    'probe_deadline', string.format('%.6f', row.probe_deadline))
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[#ARGV]))
end
"""

# ARGV: half_open_max_calls, probe_timeout, idle expiry.
_ACQUIRE = (
    _PRELUDE
    + """
local half_max = tonumber(ARGV[1])
local previous = refresh()
local dirty = previous ~= ''
if row.state == 'half_open' and row.in_flight >= half_max
    and now >= row.probe_deadline then
  transition('half_open', 0)
  dirty = true
end
local admitted, probe, retry = 0, 0, 0
if row.state == 'closed' then
  admitted = 1
elseif row.state == 'half_open' and row.in_flight < half_max then
  row.in_flight = row.in_flight + 1
  row.probe_deadline = now + tonumber(ARGV[2])
  admitted = 1
  probe = 1
  dirty = true
elseif row.state == 'open' then
  retry = math.max(0, row.open_until - now)
end
if dirty then save() end
return {admitted, row.gen, probe, row.state, string.format('%.6f', retry), previous}
"""
)

# ARGV: generation, probe (0/1), outcome, max_failures, open_duration,
# half_open_max_calls, idle expiry.
_RECORD = (
    _PRELUDE
    + """
local old = row.state
if tonumber(ARGV[1]) ~= row.gen then return {row.state, ''} end
local outcome = ARGV[3]
if row.state == 'closed' then
  if outcome == 'success' and row.failures > 0 then
    row.failures = 0
    save()
  elseif outcome == 'failure' then
    row.failures = row.failures + 1
    if row.failures >= tonumber(ARGV[4]) then
      transition('open', tonumber(ARGV[5]))
      save()
      return {'open', old}
    end
    save()
  end
  return {row.state, ''}
end
if row.state ~= 'half_open' or ARGV[2] ~= '1' then return {row.state, ''} end
row.in_flight = math.max(0, row.in_flight - 1)
if outcome == 'failure' then
  transition('open', tonumber(ARGV[5]))
  save()
  return {'open', old}
end
if outcome == 'success' then
  row.successes = row.successes + 1
  if row.successes >= tonumber(ARGV[6]) then
    transition('closed', 0)
    save()
    return {'closed', old}
  end
end
save()
return {row.state, ''}
"""
)

# ARGV: idle expiry. Reports a due half-open transition without writing it.
_READ = (
    _PRELUDE
    + """
refresh()
local remaining = 0
if row.state == 'open' then remaining = math.max(0, row.open_until - now) end
return {row.state, row.gen, row.failures, row.in_flight, row.successes,
  string.format('%.6f', remaining)}
"""
)

# ARGV: open_remaining, idle expiry.
_TRIP = (
    _PRELUDE
    + """
refresh()
local old = row.state
local remaining = math.max(0, tonumber(ARGV[1]))
if row.state == 'open' then
  if now + remaining > row.open_until then row.open_until = now + remaining end
  save()
  return {'open', ''}
end
transition('open', remaining)
save()
return {'open', old}
"""
)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _previous(value: Any) -> SharedBreakerState | None:
    text = _text(value)
    return SharedBreakerState(text) if text else None


class RedisBreakerStateStore(BreakerStateStore):
    """Breaker state in Redis hashes named `<prefix>:breaker:<name>`.

    Every Redis error or timeout is raised as `StorageError`; the guard
    then degrades to its in-process breaker and calls `check` again after
    its reconnect interval.
    """

    def __init__(
        self, client: Any, *, prefix: str, timeout: float, owns_client: bool = True
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.operation_timeout = timeout
        self._owns_client = owns_client
        self._acquire = client.register_script(_ACQUIRE)
        self._record = client.register_script(_RECORD)
        self._read = client.register_script(_READ)
        self._trip = client.register_script(_TRIP)

    def breaker_key(self, name: str) -> str:
        """Return the Redis key of breaker `name`."""
        return f"{self.prefix}:breaker:{name}"

    async def close(self) -> None:
        """Close the client's connections if this store created the client."""
        if self._owns_client:
            # A client that lost its server has nothing left to release.
            with contextlib.suppress(RedisError):
                await self.client.aclose()

    async def check(self) -> None:
        """Send PING; raises `StorageError` when Redis does not answer."""
        await self._run("PING", self.client.ping())

    async def acquire(self, name: str, policy: BreakerPolicy) -> Admission:
        """Admit or reject one call, fleet-wide, in one script."""
        admitted, generation, probe, state, retry_after, previous = await self._run(
            "acquire",
            self._acquire(
                keys=[self.breaker_key(name)],
                args=[
                    policy.half_open_max_calls,
                    policy.probe_timeout,
                    IDLE_EXPIRY_SECONDS,
                ],
            ),
        )
        return Admission(
            admitted=bool(admitted),
            generation=int(generation),
            probe=bool(probe),
            state=SharedBreakerState(_text(state)),
            retry_after=float(_text(retry_after)),
            previous=_previous(previous),
        )

    async def record(
        self,
        name: str,
        policy: BreakerPolicy,
        generation: int,
        probe: bool,
        outcome: SharedOutcome,
    ) -> RecordResult:
        """Count one outcome, fleet-wide, in one script."""
        state, previous = await self._run(
            "record",
            self._record(
                keys=[self.breaker_key(name)],
                args=[
                    generation,
                    1 if probe else 0,
                    outcome.value,
                    policy.max_failures,
                    policy.open_duration,
                    policy.half_open_max_calls,
                    IDLE_EXPIRY_SECONDS,
                ],
            ),
        )
        return RecordResult(SharedBreakerState(_text(state)), _previous(previous))

    async def read(self, name: str, policy: BreakerPolicy) -> BreakerRecord:
        """Return the breaker's state and counts."""
        state, generation, failures, in_flight, successes, remaining = await self._run(
            "read",
            self._read(keys=[self.breaker_key(name)], args=[IDLE_EXPIRY_SECONDS]),
        )
        return BreakerRecord(
            state=SharedBreakerState(_text(state)),
            generation=int(generation),
            failures=int(failures),
            probes_in_flight=int(in_flight),
            probe_successes=int(successes),
            open_remaining=float(_text(remaining)),
        )

    async def trip(
        self, name: str, policy: BreakerPolicy, open_remaining: float
    ) -> RecordResult:
        """Open the breaker for at least `open_remaining` seconds."""
        state, previous = await self._run(
            "trip",
            self._trip(
                keys=[self.breaker_key(name)],
                args=[open_remaining, IDLE_EXPIRY_SECONDS],
            ),
        )
        return RecordResult(SharedBreakerState(_text(state)), _previous(previous))

    async def _run(self, action: str, awaitable: Any) -> Any:
        try:
            return await awaitable
        except RedisError as exc:
            raise StorageError(
                f"Redis breaker state store: {action} failed: {exc}"
            ) from exc
