"""Response headers every page gets."""
from django.conf import settings


class ContentSecurityPolicyMiddleware:
    """Content-Security-Policy from settings: scripts only from this site, so an injected
    ``<script>`` or ``onclick=`` does not run. Pages keep their JavaScript in static files."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = settings.CONTENT_SECURITY_POLICY
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response
