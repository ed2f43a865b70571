from django.urls import path

from segmentation.dashboard import dashboard

urlpatterns = [path("", dashboard, name="segmentation-dashboard")]
