from django.urls import path

from credit import api

C = "customers/<str:customer_id>/credit"

urlpatterns = [
    path("credit/lines/", api.CreditLineListView.as_view(), name="credit-line-list"),
    path("credit/lines/<str:line_id>/", api.CreditLineDetailView.as_view(), name="credit-line-detail"),
    path(
        "credit/lines/<str:line_id>/approve", api.CreditLineApproveView.as_view(), name="credit-line-approve"
    ),
    path("credit/lines/<str:line_id>/reject", api.CreditLineRejectView.as_view(), name="credit-line-reject"),
    path(
        "credit/lines/<str:line_id>/suspend", api.CreditLineSuspendView.as_view(), name="credit-line-suspend"
    ),
    path(
        "credit/lines/<str:line_id>/reinstate",
        api.CreditLineReinstateView.as_view(),
        name="credit-line-reinstate",
    ),
    path("credit/lines/<str:line_id>/close", api.CreditLineCloseView.as_view(), name="credit-line-close"),
    path("credit/lines/<str:line_id>/limit", api.CreditLineLimitView.as_view(), name="credit-line-limit"),
    path("credit/aging/", api.TenantAgingView.as_view(), name="credit-aging"),
    path("credit/kpis/", api.CreditKpisView.as_view(), name="credit-kpis"),
    path(f"{C}/", api.CustomerCreditView.as_view(), name="customer-credit"),
    path(f"{C}/terms/", api.CommercialTermsView.as_view(), name="customer-credit-terms"),
    path(f"{C}/check", api.CreditCheckView.as_view(), name="customer-credit-check"),
    path(f"{C}/uses/", api.CreditUseView.as_view(), name="customer-credit-uses"),
    path(f"{C}/charges/", api.CreditChargeListView.as_view(), name="customer-credit-charges"),
    path(
        f"{C}/charges/<str:usage_id>/cancel",
        api.CreditChargeCancelView.as_view(),
        name="customer-credit-charge-cancel",
    ),
    path(f"{C}/holds/", api.CreditHoldListView.as_view(), name="customer-credit-holds"),
    path(
        f"{C}/holds/<str:hold_id>/release",
        api.CreditHoldReleaseView.as_view(),
        name="customer-credit-hold-release",
    ),
    path(f"{C}/payments/", api.CreditPaymentListView.as_view(), name="customer-credit-payments"),
    path(f"{C}/aging/", api.CustomerAgingView.as_view(), name="customer-credit-aging"),
    path(f"{C}/behaviour/", api.PaymentBehaviourView.as_view(), name="customer-credit-behaviour"),
]
