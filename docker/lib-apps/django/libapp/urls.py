from django.urls import path

from . import views

urlpatterns = [
    path("healthz", views.healthz),
    path("accounts/login/", views.login),
    path("cart/", views.cart),
    path("cart/add/", views.add),
]
