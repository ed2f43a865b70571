"""Errors of the loyalty app, each in one category of core.errors."""

from django.utils.translation import gettext_noop

from core.errors import (
    Conflict,
    InvalidCursor,  # noqa: F401 - raised by core.api's cursor pagination
    InvalidInput,
    NotFound,
)


class InvalidPoints(InvalidInput):
    code = "invalid_points"
    message = gettext_noop("points must be a whole number greater than zero.")


class InvalidEarnRequest(InvalidInput):
    code = "invalid_earn_request"
    message = gettext_noop("Give exactly one of purchase_amount or points.")


class InvalidProgram(InvalidInput):
    code = "invalid_program"
    message = gettext_noop("The program's settings are not valid.")


class InvalidTier(InvalidInput):
    code = "invalid_tier"
    message = gettext_noop("No such tier.")


class ReasonRequired(InvalidInput):
    code = "reason_required"
    message = gettext_noop("A manual adjustment needs a reason.")


class PurchaseAmountUnknown(InvalidInput):
    code = "purchase_amount_unknown"
    message = gettext_noop(
        "A partial return needs the purchase amount, and none was recorded for this reference."
    )


class InvalidStamps(InvalidInput):
    code = "invalid_stamps"
    message = gettext_noop("stamps must be a whole number greater than zero.")


class InsufficientPoints(Conflict):
    code = "insufficient_points"
    message = gettext_noop("The customer does not have enough available points.")


class BelowMinimumRedemption(Conflict):
    code = "below_minimum_redemption"
    message = gettext_noop("The redemption uses fewer points than the program's minimum.")


class RedemptionExceedsPurchaseShare(Conflict):
    code = "redemption_exceeds_purchase_share"
    message = gettext_noop("The points would pay for more of the purchase than the program allows.")


class NothingToReverse(Conflict):
    code = "nothing_to_reverse"
    message = gettext_noop("There are no points of this reference left to reverse.")


class ReversalExceedsPurchase(Conflict):
    code = "reversal_exceeds_purchase"
    message = gettext_noop("The amount returned exceeds what is left of the purchase.")


class RewardAlreadyRedeemed(Conflict):
    code = "reward_already_redeemed"
    message = gettext_noop("This reward was already redeemed.")


class RewardRevoked(Conflict):
    code = "reward_revoked"
    message = gettext_noop("This reward was revoked by a return.")


class StampRuleNotFound(NotFound):
    code = "stamp_rule_not_found"
    message = gettext_noop("No such stamp rule.")


class StampRewardNotFound(NotFound):
    code = "stamp_reward_not_found"
    message = gettext_noop("No such stamp reward.")


class PointsHoldNotFound(NotFound):
    code = "points_hold_not_found"
    message = gettext_noop("No such points hold.")


class PointsHoldNotActive(Conflict):
    code = "points_hold_not_active"
    message = gettext_noop("The points hold has already ended (committed or released).")


class PointsHoldExpired(Conflict):
    code = "points_hold_expired"
    message = gettext_noop(
        "The points hold expired and its points are no longer available; quote and hold again."
    )
