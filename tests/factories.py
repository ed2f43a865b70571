"""factory_boy factories. Tenant-owned rows are created through the services, inside their tenant's context."""

from __future__ import annotations

from typing import Any

import factory

from core.models import Tenant
from core.tenancy import tenant_context


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"tenant-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())
    country = "CL"
    phone_region = "CL"
    currency = "CLP"
    time_zone = "America/Santiago"


def chilean_mobile(n: int) -> str:
    return f"+569{61000000 + n:08d}"


class CustomerFactory(factory.Factory):
    """Builds the data and creates the customer with `customer_create`, as every door does."""

    class Meta:
        model = dict

    tenant: Any = factory.SubFactory(TenantFactory)
    type = "individual"
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.Sequence(lambda n: f"customer{n}@example.com")
    phone = factory.Sequence(lambda n: chilean_mobile(n))

    @classmethod
    def _create(cls, model_class: Any, *args: Any, tenant: Any, **kwargs: Any) -> Any:
        from customers.services import customer_create

        with tenant_context(tenant):
            return customer_create(tenant=tenant, data=kwargs, actor="factory")

    @classmethod
    def _build(cls, model_class: Any, *args: Any, **kwargs: Any) -> Any:
        return kwargs


class BusinessCustomerFactory(CustomerFactory):
    type = "business"
    first_name = ""
    last_name = ""
    legal_name = factory.Faker("company")
    trade_name = factory.LazyAttribute(lambda o: o.legal_name)
