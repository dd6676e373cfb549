from django.urls import path

from .consumers import SearchConsumer, WorkersConsumer

websocket_urlpatterns = [
    path("ws/searches/<int:search_id>/", SearchConsumer.as_asgi()),
    path("ws/workers/", WorkersConsumer.as_asgi()),
]
