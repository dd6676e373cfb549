from django.urls import path

from .consumers import LiveConsumer, SearchConsumer, SearchListConsumer, WorkersConsumer

websocket_urlpatterns = [
    path("ws/searches/<int:search_id>/", SearchConsumer.as_asgi()),
    path("ws/workers/", WorkersConsumer.as_asgi()),
    path("ws/searches/", SearchListConsumer.as_asgi()),
    path("ws/live/searches/<int:search_id>/", LiveConsumer.as_asgi()),
]
