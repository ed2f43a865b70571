from django.urls import path

from customers import history_api

urlpatterns = [
    path(
        "customers/<str:customer_id>/purchases/",
        history_api.CustomerPurchaseListView.as_view(),
        name="customer-purchases",
    ),
    path(
        "customers/<str:customer_id>/metrics/",
        history_api.CustomerMetricsView.as_view(),
        name="customer-metrics",
    ),
]
