"""Errors of the credit app, each in one category of core.errors (which fixes its HTTP and gRPC status)."""

from django.utils.translation import gettext_noop

from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied


class CreditLineNotFound(NotFound):
    code = "credit_line_not_found"
    message = gettext_noop("The customer has no credit line.")


class CreditHoldNotFound(NotFound):
    code = "credit_hold_not_found"
    message = gettext_noop("No such credit hold.")


class CreditChargeNotFound(NotFound):
    code = "credit_charge_not_found"
    message = gettext_noop("No such credit charge.")


class CreditLimitExceeded(Conflict):
    code = "credit_limit_exceeded"
    message = gettext_noop("The amount exceeds the available credit.")


class CreditLineNotActive(Conflict):
    code = "credit_line_not_active"
    message = gettext_noop("The credit line is not approved.")


class CreditOnHold(Conflict):
    code = "credit_on_hold"
    message = gettext_noop("The credit line is on hold because of overdue charges.")


class CreditLineExists(Conflict):
    code = "credit_line_exists"
    message = gettext_noop("The customer already has an open credit line or request.")


class CreditBusinessOnly(Conflict):
    code = "credit_business_only"
    message = gettext_noop("Credit lines are for business customers only.")


class CreditLineTransitionInvalid(Conflict):
    code = "credit_line_invalid_transition"
    message = gettext_noop("The credit line cannot make this change in its current status.")


class CreditLineHasExposure(Conflict):
    code = "credit_line_has_exposure"
    message = gettext_noop("The credit line still has unpaid charges or active holds.")


class CreditOrderAlreadyCharged(Conflict):
    code = "credit_order_already_charged"
    message = gettext_noop("This order has already been charged to credit.")


class CreditHoldExists(Conflict):
    code = "credit_hold_exists"
    message = gettext_noop("This order already has an active hold with another amount.")


class CreditHoldNotActive(Conflict):
    code = "credit_hold_not_active"
    message = gettext_noop("The hold is no longer active.")


class CreditChargeNotCancellable(Conflict):
    code = "credit_charge_not_cancellable"
    message = gettext_noop("Only an unpaid charge with no payments applied can be cancelled.")


class SelfApprovalForbidden(PermissionDenied):
    code = "self_approval_forbidden"
    message = gettext_noop("Nobody may approve their own credit request.")


class InvalidPaymentTerms(InvalidInput):
    code = "invalid_payment_terms"
    message = gettext_noop("Payment terms must be a whole number of days between 0 and 365.")


class InvalidOrderId(InvalidInput):
    code = "invalid_order_id"
    message = gettext_noop("The order id must be 1 to 100 characters, without control characters.")


class InvalidPaymentId(InvalidInput):
    code = "invalid_payment_id"
    message = gettext_noop("The payment id must be 1 to 100 characters, without control characters.")


class InvalidDiscountBracket(InvalidInput):
    code = "invalid_discount_bracket"
    message = gettext_noop("The volume discount brackets are not valid.")
