"""Errors of the customers app, each in one category of core.errors."""

from core.errors import Conflict, InvalidInput, NotFound


class CustomerNotFound(NotFound):
    code = "customer_not_found"
    message = "No such customer."


class AddressNotFound(NotFound):
    code = "address_not_found"
    message = "No such address."


class FavouriteOrderNotFound(NotFound):
    code = "favourite_order_not_found"
    message = "No such favourite order."


class InvalidPhone(InvalidInput):
    code = "invalid_phone"
    message = "The phone number is not valid."


class InvalidEmail(InvalidInput):
    code = "invalid_email"
    message = "The email address is not valid."


class InvalidDocument(InvalidInput):
    code = "invalid_document"
    message = "The tax document number is not valid."


class InvalidCustomer(InvalidInput):
    code = "invalid_customer"
    message = "The customer's data is not valid."


class DuplicateCustomer(Conflict):
    code = "duplicate_customer"
    message = "Another customer of this business already has this identifier."


class CustomerBlocked(Conflict):
    code = "customer_blocked"
    message = "The customer is blocked."
