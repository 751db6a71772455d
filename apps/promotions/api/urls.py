from django.urls import path

from apps.promotions.api import views

app_name = "promotions-api"

urlpatterns = [
    path("promotions/", views.PromotionListCreateApi.as_view(), name="promotion_list"),
    path("promotions/<int:pk>/", views.PromotionDetailApi.as_view(), name="promotion_detail"),
    path("promotions/<int:pk>/approve/", views.PromotionApproveApi.as_view(), name="promotion_approve"),
    path("promotions/<int:pk>/reject/", views.PromotionRejectApi.as_view(), name="promotion_reject"),
    path("promotions/<int:pk>/cancel/", views.PromotionCancelApi.as_view(), name="promotion_cancel"),
]
