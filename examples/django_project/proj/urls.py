"""URLs of the example project."""

from django.urls import path

from . import views

urlpatterns = [
    path("signup/", views.signup),
    path("status/<str:task_id>/", views.status),
]
