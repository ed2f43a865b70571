"""The customers admin with the 360 page: registered here, above the apps, because the page reads every app."""

from django.contrib import admin

from customer360.admin_360 import Customer360Mixin
from customers.admin import CustomerAdmin
from customers.models import Customer

admin.site.unregister(Customer)


@admin.register(Customer)
class Customer360Admin(Customer360Mixin, CustomerAdmin):
    pass
