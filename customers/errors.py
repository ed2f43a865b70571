"""Errors of the customers app, each in one category of core.errors."""

from django.utils.translation import gettext_noop

from core.errors import Conflict, InvalidInput, NotFound


class CustomerNotFound(NotFound):
    code = "customer_not_found"
    message = gettext_noop("No such customer.")


class AddressNotFound(NotFound):
    code = "address_not_found"
    message = gettext_noop("No such address.")


class FavouriteOrderNotFound(NotFound):
    code = "favourite_order_not_found"
    message = gettext_noop("No such favourite order.")


class InvalidPhone(InvalidInput):
    code = "invalid_phone"
    message = gettext_noop("The phone number is not valid.")


class InvalidEmail(InvalidInput):
    code = "invalid_email"
    message = gettext_noop("The email address is not valid.")


class InvalidDocument(InvalidInput):
    code = "invalid_document"
    message = gettext_noop("The tax document number is not valid.")


class InvalidCustomer(InvalidInput):
    code = "invalid_customer"
    message = gettext_noop("The customer's data is not valid.")


class DuplicateCustomer(Conflict):
    code = "duplicate_customer"
    message = gettext_noop("Another customer of this business already has this identifier.")


class CustomerBlocked(Conflict):
    code = "customer_blocked"
    message = gettext_noop("The customer is blocked.")
