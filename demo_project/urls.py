from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    # The admin's "View site" link lands on the monitor.
    path("", RedirectView.as_view(pattern_name="djq:monitor"), name="home"),
    path("admin/", admin.site.urls),
    path("djq/", include("djq.urls")),
    path("api/djq/", include("djq.api.urls")),
]
