from django.urls import path

from apps.events import views

app_name = "events"

urlpatterns = [
    path("channels/", views.channel_list, name="channel_list"),
    path("channels/<int:pk>/edit/", views.channel_update, name="channel_update"),
    path("channels/<int:pk>/delete/", views.channel_delete, name="channel_delete"),
    path("deliveries/", views.delivery_list, name="delivery_list"),
    path("deliveries/<int:pk>/", views.delivery_detail, name="delivery_detail"),
    path("deliveries/<int:pk>/resend/", views.delivery_resend, name="delivery_resend"),
]
