"""The REST API: Django REST framework views over the same selectors and services as the pages."""
