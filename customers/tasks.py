"""Celery tasks of the purchase history: parse the arguments, call the history functions, nothing else."""

from __future__ import annotations

from celery import shared_task

from core.tenancy import tenant_context


@shared_task(
    name="customers.history_backfill_customer",
    ignore_result=True,
    autoretry_for=(Exception,),
    retry_backoff=30,
    retry_backoff_max=900,
    max_retries=8,
)
def history_backfill_customer_task(tenant_id: str, customer_id: str) -> dict[str, int]:
    """Backfill one customer's history from the Order Service (e.g. right after importing customers)."""
    from customers.history import history_backfill_customer
    from customers.order_client import OrderServiceClient

    with OrderServiceClient() as client:
        counts = history_backfill_customer(tenant_id=tenant_id, customer_id=customer_id, client=client)
    return {"orders": counts.orders, "recorded": counts.recorded}


@shared_task(name="customers.metrics_rebuild", ignore_result=True)
def customer_metrics_rebuild_task(tenant_id: str) -> int:
    """Recompute every customer's purchase aggregates of a tenant (after a data repair)."""
    from customers.history import customer_metrics_refresh
    from customers.models import Customer, Purchase

    with tenant_context(tenant_id):
        buyers = (
            Purchase.objects.filter(customer__isnull=False).values_list("customer_id", flat=True).distinct()
        )
        customers = list(Customer.objects.filter(pk__in=buyers))
        for customer in customers:
            customer_metrics_refresh(customer=customer)
    return len(customers)
