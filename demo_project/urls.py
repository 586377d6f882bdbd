from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("djq/", include("djq.urls")),
    path("api/djq/", include("djq.api.urls")),
]
