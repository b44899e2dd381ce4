from django.urls import path

from . import views

urlpatterns = [path("visits", views.visits), path("never", views.never)]
