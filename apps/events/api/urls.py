from django.urls import path

from apps.events.api import views

app_name = "events-api"

urlpatterns = [
    path("channels/", views.ChannelListCreateApi.as_view(), name="channel_list"),
    path("channels/<int:pk>/", views.ChannelDetailApi.as_view(), name="channel_detail"),
    path("deliveries/", views.DeliveryListApi.as_view(), name="delivery_list"),
    path("deliveries/<int:pk>/", views.DeliveryDetailApi.as_view(), name="delivery_detail"),
    path("deliveries/<int:pk>/resend/", views.DeliveryResendApi.as_view(), name="delivery_resend"),
]
