"""Every change to points, tiers and stamps. Nothing else writes the ledger or the cached balances.

How a change stays exact under retries and concurrency:
- A retry-able request first claims its idempotency key through `core.idempotency.idempotent` (a row in
  `IdempotencyRecord`, unique per tenant in the `loyalty` scope) in a savepoint; a concurrent duplicate waits on
  that unique index and then replays the stored result. A refused request (insufficient points, ...) rolls its
  savepoint back, so the key is not spent.
- The customer's `LoyaltyAccount` row is then locked (`select_for_update`); awards, allocations and the cached
  buckets of that customer change only under this lock. Stamp cards are locked after the account, in primary-key
  order.
- Each service first "matures" the account (releases pending awards whose return window passed, expires awards
  whose date passed), so what it sees does not depend on when the nightly jobs last ran.
- Points held for a sale (`holds`) are counted on the account (`held_points`, under the same lock) and are not
  available to any other redemption; a commit redeems them through the ordinary redeem.
- The database checks what must hold anyway: buckets add up, available >= 0 unless the program allows negative
  balances, an award's remaining stays within 0..points, the ledger is append-only.
"""

from __future__ import annotations

from loyalty.services.holds import (
    commit_key,
    points_hold_commit,
    points_hold_place,
    points_hold_release,
    points_holds_expire,
)
from loyalty.services.inputs import (
    MAX_ITEM_QUANTITY,
    MAX_MIN_REDEMPTION_POINTS,
    MAX_POINTS,
    MAX_REDEMPTION_POINTS_PER_UNIT,
    MAX_STAMPS,
)
from loyalty.services.ledger import IDEMPOTENCY_SCOPE
from loyalty.services.points import (
    points_adjust,
    points_earn,
    points_expire,
    points_redeem,
    points_release_pending,
)
from loyalty.services.program import (
    PROGRAM_FIELDS,
    account_sync_negative_policy,
    program_ensure,
    program_snapshot_cached,
    program_update,
    validate_program,
    validate_tiers,
)
from loyalty.services.results import HoldResult, LoyaltyResult, ReversalResult, StampResult
from loyalty.services.reversals import points_reverse
from loyalty.services.stamps import stamp_reward_redeem, stamp_rule_save, stamps_add
from loyalty.services.tier_reviews import tier_override_clear, tier_override_set, tier_review

__all__ = [
    "IDEMPOTENCY_SCOPE",
    "MAX_ITEM_QUANTITY",
    "MAX_MIN_REDEMPTION_POINTS",
    "MAX_POINTS",
    "MAX_REDEMPTION_POINTS_PER_UNIT",
    "MAX_STAMPS",
    "PROGRAM_FIELDS",
    "HoldResult",
    "LoyaltyResult",
    "ReversalResult",
    "StampResult",
    "account_sync_negative_policy",
    "commit_key",
    "points_adjust",
    "points_earn",
    "points_expire",
    "points_hold_commit",
    "points_hold_place",
    "points_hold_release",
    "points_holds_expire",
    "points_redeem",
    "points_release_pending",
    "points_reverse",
    "program_ensure",
    "program_snapshot_cached",
    "program_update",
    "stamp_reward_redeem",
    "stamp_rule_save",
    "stamps_add",
    "tier_override_clear",
    "tier_override_set",
    "tier_review",
    "validate_program",
    "validate_tiers",
]
