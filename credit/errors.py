"""Errors of the credit app, each in one category of core.errors (which fixes its HTTP and gRPC status)."""

from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied


class CreditLineNotFound(NotFound):
    code = "credit_line_not_found"
    message = "The customer has no credit line."


class CreditHoldNotFound(NotFound):
    code = "credit_hold_not_found"
    message = "No such credit hold."


class CreditChargeNotFound(NotFound):
    code = "credit_charge_not_found"
    message = "No such credit charge."


class CreditLimitExceeded(Conflict):
    code = "credit_limit_exceeded"
    message = "The amount exceeds the available credit."


class CreditLineNotActive(Conflict):
    code = "credit_line_not_active"
    message = "The credit line is not approved."


class CreditOnHold(Conflict):
    code = "credit_on_hold"
    message = "The credit line is on hold because of overdue charges."


class CreditLineExists(Conflict):
    code = "credit_line_exists"
    message = "The customer already has an open credit line or request."


class CreditBusinessOnly(Conflict):
    code = "credit_business_only"
    message = "Credit lines are for business customers only."


class CreditLineTransitionInvalid(Conflict):
    code = "credit_line_invalid_transition"
    message = "The credit line cannot make this change in its current status."


class CreditLineHasExposure(Conflict):
    code = "credit_line_has_exposure"
    message = "The credit line still has unpaid charges or active holds."


class CreditOrderAlreadyCharged(Conflict):
    code = "credit_order_already_charged"
    message = "This order has already been charged to credit."


class CreditHoldExists(Conflict):
    code = "credit_hold_exists"
    message = "This order already has an active hold with another amount."


class CreditHoldNotActive(Conflict):
    code = "credit_hold_not_active"
    message = "The hold is no longer active."


class CreditChargeNotCancellable(Conflict):
    code = "credit_charge_not_cancellable"
    message = "Only an unpaid charge with no payments applied can be cancelled."


class SelfApprovalForbidden(PermissionDenied):
    code = "self_approval_forbidden"
    message = "Nobody may approve their own credit request."


class InvalidPaymentTerms(InvalidInput):
    code = "invalid_payment_terms"
    message = "Payment terms must be a whole number of days between 0 and 365."


class InvalidOrderId(InvalidInput):
    code = "invalid_order_id"
    message = "The order id must be 1 to 100 characters, without control characters."


class InvalidPaymentId(InvalidInput):
    code = "invalid_payment_id"
    message = "The payment id must be 1 to 100 characters, without control characters."


class InvalidDiscountBracket(InvalidInput):
    code = "invalid_discount_bracket"
    message = "The volume discount brackets are not valid."
