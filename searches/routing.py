from django.urls import path

from .consumers import SearchConsumer

websocket_urlpatterns = [path("ws/searches/<int:search_id>/", SearchConsumer.as_asgi())]
