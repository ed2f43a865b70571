from django.urls import path

from segmentation import api

urlpatterns = [
    path("customers/<str:customer_id>/segment/", api.CustomerSegmentView.as_view(), name="customer-segment"),
    path(
        "customers/<str:customer_id>/segment/history/",
        api.CustomerSegmentHistoryView.as_view(),
        name="customer-segment-history",
    ),
    path("analytics/kpis", api.AnalyticsKpisView.as_view(), name="analytics-kpis"),
]
