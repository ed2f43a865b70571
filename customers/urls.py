from django.urls import path

from customers import api

urlpatterns = [
    path("customers/", api.CustomerListView.as_view(), name="customer-list"),
    path("customers/lookup", api.CustomerLookupView.as_view(), name="customer-lookup"),
    path(
        "customers/lookup/phone-suffix", api.PhoneCandidatesView.as_view(), name="customer-phone-candidates"
    ),
    path(
        "customers/by-external-id/<str:external_id>",
        api.CustomerByExternalIdView.as_view(),
        name="customer-by-external-id",
    ),
    path("customers/changes", api.CustomerSyncChangesView.as_view(), name="customer-sync-changes"),
    path("customers/<str:customer_id>/", api.CustomerDetailView.as_view(), name="customer-detail"),
    path("customers/<str:customer_id>/addresses/", api.AddressListView.as_view(), name="customer-addresses"),
    path(
        "customers/<str:customer_id>/addresses/<str:address_id>/",
        api.AddressDetailView.as_view(),
        name="customer-address-detail",
    ),
    path(
        "customers/<str:customer_id>/preferences/", api.PreferencesView.as_view(), name="customer-preferences"
    ),
    path(
        "customers/<str:customer_id>/favourite-orders/",
        api.FavouriteOrderListView.as_view(),
        name="customer-favourite-orders",
    ),
    path(
        "customers/<str:customer_id>/favourite-orders/<str:favourite_id>/",
        api.FavouriteOrderDetailView.as_view(),
        name="customer-favourite-order-detail",
    ),
    path("customers/<str:customer_id>/changes/", api.CustomerChangesView.as_view(), name="customer-changes"),
]
