from django.urls import re_path

from loyalty import api, holds_api

# Trailing slashes are optional, so that a POST never meets a redirect.
CUSTOMER = r"^customers/(?P<customer_id>[^/]+)/loyalty"

urlpatterns = [
    re_path(rf"{CUSTOMER}/?$", api.SummaryView.as_view(), name="loyalty-summary"),
    re_path(rf"{CUSTOMER}/transactions/?$", api.TransactionListView.as_view(), name="loyalty-transactions"),
    re_path(rf"{CUSTOMER}/tier-history/?$", api.TierHistoryView.as_view(), name="loyalty-tier-history"),
    re_path(rf"{CUSTOMER}/tier-override/?$", api.TierOverrideView.as_view(), name="loyalty-tier-override"),
    re_path(rf"{CUSTOMER}/earn/?$", api.EarnView.as_view(), name="loyalty-earn"),
    re_path(rf"{CUSTOMER}/redeem/quote/?$", api.QuoteView.as_view(), name="loyalty-redeem-quote"),
    re_path(rf"{CUSTOMER}/redeem/?$", api.RedeemView.as_view(), name="loyalty-redeem"),
    re_path(rf"{CUSTOMER}/holds/?$", holds_api.HoldListView.as_view(), name="loyalty-holds"),
    re_path(
        rf"{CUSTOMER}/holds/(?P<hold_id>[^/]+)/commit/?$",
        holds_api.HoldCommitView.as_view(),
        name="loyalty-hold-commit",
    ),
    re_path(
        rf"{CUSTOMER}/holds/(?P<hold_id>[^/]+)/release/?$",
        holds_api.HoldReleaseView.as_view(),
        name="loyalty-hold-release",
    ),
    re_path(rf"{CUSTOMER}/reverse/?$", api.ReverseView.as_view(), name="loyalty-reverse"),
    re_path(rf"{CUSTOMER}/adjust/?$", api.AdjustView.as_view(), name="loyalty-adjust"),
    re_path(rf"{CUSTOMER}/stamps/?$", api.StampsView.as_view(), name="loyalty-stamps"),
    re_path(
        rf"{CUSTOMER}/stamps/rewards/(?P<reward_id>[^/]+)/redeem/?$",
        api.StampRewardRedeemView.as_view(),
        name="loyalty-stamp-reward-redeem",
    ),
    re_path(r"^loyalty/program/?$", api.ProgramView.as_view(), name="loyalty-program"),
    re_path(r"^loyalty/stamp-rules/?$", api.StampRuleListView.as_view(), name="loyalty-stamp-rules"),
]
