"""The Django project. The Celery app is loaded on first use (``nasweb.celery_app``, or
``nasweb.celery`` as the services import it), so that the command-line client
(``nasweb.cli``) imports neither Celery nor Django and installs without them."""


def __getattr__(name):
    if name == "celery_app":
        from .celery import app

        return app
    raise AttributeError(f"module 'nasweb' has no attribute {name!r}")


__all__ = ["celery_app"]
