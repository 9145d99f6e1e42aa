"""Who holds a tracking number: at most one tenant, and within it at most one pool.

``ct_numbers`` and ``ct_pools`` are keyed per tenant, so they cannot say that a number is free
across tenants. The bucket ``ct_number_claims`` (key: the number's digits) can: a claim is made
with an atomic create and changed only with compare-and-set, so two tenants racing for one number
cannot both win. A claim lives while its tenant has the number in a pool or assigned on its own.

Writes to a pool or an assignment and to the claim are two steps; if the API dies between them a
claim can outlive its reason. Such a stale claim is detected (its pool no longer lists the number
and no own assignment exists) and taken over, so nothing stays blocked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pydantic import BaseModel

from services.api.kv_store import AlreadyExists, KvRepository, StaleRevision, Versioned
from services.api.problems import Conflict

CAS_RETRIES = 5
PARALLEL = 32  # claims in flight at once for one pool write

# (tenant_id, number, claim) -> is the claim still backed by a pool entry or an assignment?
LivenessCheck = Callable[[str, str, "NumberClaim"], Awaitable[bool]]


class NumberClaim(BaseModel):
    tenant_id: str
    pool_id: str | None = None
    assigned: bool = False

    @property
    def idle(self) -> bool:
        return self.pool_id is None and not self.assigned


def claim_key(number: str) -> str:
    return number.lstrip("+")


IN_USE = "number {number} is in use"


class Claims:
    def __init__(self, repo: KvRepository[NumberClaim], is_live: LivenessCheck) -> None:
        self._repo = repo
        self._is_live = is_live

    async def get(self, number: str) -> NumberClaim | None:
        found = await self._repo.get(claim_key(number))
        return found.value if found else None

    async def _cas(
        self, number: str, current: Versioned[NumberClaim] | None, new: NumberClaim
    ) -> bool:
        key = claim_key(number)
        try:
            if current is None:
                await self._repo.create(key, new)
            elif new.idle:
                await self._repo.delete(key, current.revision)
            else:
                await self._repo.update(key, new, current.revision)
        except (AlreadyExists, StaleRevision):
            return False
        return True

    async def _claim(self, tenant_id: str, number: str, pool_id: str | None) -> None:
        """Claim for a pool (``pool_id``) or for an own assignment (``pool_id`` None)."""
        for _ in range(CAS_RETRIES):
            current = await self._repo.get(claim_key(number))
            claim = current.value if current else None
            if claim is not None and claim.tenant_id != tenant_id:
                if await self._is_live(claim.tenant_id, number, claim):
                    raise Conflict(IN_USE.format(number=number), field="numbers")
                claim = None  # stale: its tenant no longer has the number
            if claim is None:
                claim = NumberClaim(tenant_id=tenant_id)
            if pool_id is not None:
                if claim.pool_id not in (None, pool_id) and await self._is_live(
                    tenant_id, number, NumberClaim(tenant_id=tenant_id, pool_id=claim.pool_id)
                ):
                    raise Conflict(
                        f"number {number} is already in pool {claim.pool_id}", field="numbers"
                    )
                new = claim.model_copy(update={"pool_id": pool_id})
            else:
                new = claim.model_copy(update={"assigned": True})
            if current is not None and current.value == new:
                return
            if await self._cas(number, current, new):
                return
        raise Conflict(f"number {number} is being changed concurrently; retry", field="numbers")

    async def _release(self, tenant_id: str, number: str, pool_id: str | None) -> None:
        for _ in range(CAS_RETRIES):
            current = await self._repo.get(claim_key(number))
            if current is None or current.value.tenant_id != tenant_id:
                return
            claim = current.value
            if pool_id is not None:
                if claim.pool_id != pool_id:
                    return
                new = claim.model_copy(update={"pool_id": None})
            else:
                new = claim.model_copy(update={"assigned": False})
            if await self._cas(number, current, new):
                return

    async def claim_for_pool(self, tenant_id: str, pool_id: str, numbers: list[str]) -> None:
        """All or nothing: on a conflict the numbers claimed meanwhile are released again.

        Claims run concurrently (a pool may hold thousands of numbers; one round trip each)."""
        limit = asyncio.Semaphore(PARALLEL)

        async def one(number: str) -> str:
            async with limit:
                await self._claim(tenant_id, number, pool_id)
                return number

        results = await asyncio.gather(*(one(n) for n in numbers), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            done = [r for r in results if isinstance(r, str)]
            await self.release_from_pool(tenant_id, pool_id, done)
            raise failed[0]

    async def release_from_pool(self, tenant_id: str, pool_id: str, numbers: list[str]) -> None:
        limit = asyncio.Semaphore(PARALLEL)

        async def one(number: str) -> None:
            async with limit:
                await self._release(tenant_id, number, pool_id)

        await asyncio.gather(*(one(n) for n in numbers))

    async def claim_for_assignment(self, tenant_id: str, number: str) -> None:
        await self._claim(tenant_id, number, None)

    async def release_assignment(self, tenant_id: str, number: str) -> None:
        await self._release(tenant_id, number, None)
